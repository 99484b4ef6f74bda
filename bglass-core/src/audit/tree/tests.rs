use std::collections::HashMap;

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hash(s: &str) -> Hash {
    Hash(unhex(s).try_into().unwrap())
}

fn vectors() -> serde_json::Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/merkle/rfc6962.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The published leaves and the root of each tree size 0..=8.
fn leaves_and_roots(v: &serde_json::Value) -> (Vec<Vec<u8>>, Vec<Hash>) {
    let list = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    (
        list("leaves").iter().map(|l| unhex(l)).collect(),
        list("roots").iter().map(|r| hash(r)).collect(),
    )
}

/// A tree built through the same edge and tile code the log uses.
fn build(leaves: &[Vec<u8>]) -> (TreeEdge, HashMap<(u8, u64), Vec<u8>>) {
    let mut edge = TreeEdge::new();
    let mut tiles = HashMap::new();
    let mut done = Vec::new();
    for leaf in leaves {
        edge.push(leaf_hash(leaf), &mut done);
        for t in done.drain(..) {
            tiles.insert((t.level, t.index), t.data);
        }
    }
    (edge, tiles)
}

#[test]
fn roots_match_rfc6962_vectors() {
    let (leaves, roots) = leaves_and_roots(&vectors());
    for (size, root) in roots.iter().enumerate() {
        let (edge, _) = build(&leaves[..size]);
        assert_eq!(edge.root(), *root, "size {size}");
    }
    // ring's leaf hash is the one tlog_tiles defines.
    for leaf in &leaves {
        assert_eq!(leaf_hash(leaf), tlog_tiles::record_hash(leaf));
    }
}

#[test]
fn proofs_match_rfc6962_vectors() {
    let v = vectors();
    let (leaves, roots) = leaves_and_roots(&v);
    let proof_of = |p: &serde_json::Value| -> Vec<Hash> {
        p.as_array()
            .unwrap()
            .iter()
            .map(|h| hash(h.as_str().unwrap()))
            .collect()
    };
    for case in v["inclusion"].as_array().unwrap() {
        let (index, size) = (
            case["index"].as_u64().unwrap(),
            case["size"].as_u64().unwrap(),
        );
        let expected = proof_of(&case["proof"]);
        let (edge, tiles) = build(&leaves[..size as usize]);
        let reader = TreeReader {
            edge: &edge,
            full: &tiles,
        };
        assert_eq!(
            prove_inclusion(&reader, size, index).unwrap(),
            expected,
            "{case}"
        );
        let leaf = leaf_hash(&leaves[index as usize]);
        assert!(check_inclusion(
            &expected,
            size,
            roots[size as usize],
            index,
            leaf
        ));
        // Wrong index, size, leaf, root, or a flipped bit: refused.
        assert!(
            !check_inclusion(&expected, size, roots[size as usize], index ^ 1, leaf) || size == 1
        );
        assert!(!check_inclusion(
            &expected,
            size * 2,
            roots[size as usize],
            index,
            leaf
        ));
        assert!(!check_inclusion(&expected, size, EMPTY_HASH, index, leaf));
        assert!(!check_inclusion(
            &expected,
            size,
            roots[size as usize],
            index,
            EMPTY_HASH
        ));
        for i in 0..expected.len() {
            let mut bad = expected.clone();
            bad[i].0[0] ^= 8;
            assert!(!check_inclusion(
                &bad,
                size,
                roots[size as usize],
                index,
                leaf
            ));
        }
    }
    for case in v["consistency"].as_array().unwrap() {
        let (old, new) = (case["old"].as_u64().unwrap(), case["new"].as_u64().unwrap());
        let expected = proof_of(&case["proof"]);
        let (edge, tiles) = build(&leaves[..new as usize]);
        let reader = TreeReader {
            edge: &edge,
            full: &tiles,
        };
        assert_eq!(
            prove_consistency(&reader, new, old).unwrap(),
            expected,
            "{case}"
        );
        assert!(check_consistency(
            &expected,
            new,
            roots[new as usize],
            old,
            roots[old as usize]
        ));
        if old < new {
            assert!(!check_consistency(
                &expected,
                new,
                roots[new as usize],
                old,
                roots[new as usize]
            ));
            assert!(!check_consistency(
                &expected[1..],
                new,
                roots[new as usize],
                old,
                roots[old as usize]
            ));
            for i in 0..expected.len() {
                let mut bad = expected.clone();
                bad[i].0[0] ^= 16;
                assert!(!check_consistency(
                    &bad,
                    new,
                    roots[new as usize],
                    old,
                    roots[old as usize]
                ));
            }
        }
    }
}

/// Across tile boundaries (sizes past 256 and 65,536 would need full tiles from storage),
/// every proof from the tiled reader verifies against the root of the edge.
#[test]
fn tiled_proofs_verify_across_tile_boundaries() {
    let leaves: Vec<Vec<u8>> = (0u32..700).map(|i| i.to_be_bytes().to_vec()).collect();
    let (edge, tiles) = build(&leaves);
    assert_eq!(tiles.len(), 2, "two full level-0 tiles");
    let reader = TreeReader {
        edge: &edge,
        full: &tiles,
    };
    let mut roots = vec![EMPTY_HASH];
    for n in 1..=700usize {
        roots.push(build(&leaves[..n]).0.root());
    }
    assert_eq!(edge.root(), roots[700]);
    for size in [1u64, 255, 256, 257, 511, 512, 513, 700] {
        let root = tlog_tiles::tree_hash(size, &reader).unwrap();
        assert_eq!(root, roots[size as usize], "root at {size}");
        for index in [0u64, 1, 254, 255, 256, 300, 511, 512, 699] {
            if index >= size {
                continue;
            }
            let proof = prove_inclusion(&reader, size, index).unwrap();
            assert!(check_inclusion(
                &proof,
                size,
                root,
                index,
                leaf_hash(&leaves[index as usize])
            ));
        }
        for old in [1u64, 100, 256, 300, 512] {
            if old > size {
                continue;
            }
            let proof = prove_consistency(&reader, size, old).unwrap();
            assert!(
                check_consistency(&proof, size, root, old, roots[old as usize]),
                "{old}->{size}"
            );
        }
    }
}

#[test]
fn tile_paths_follow_c2sp() {
    assert_eq!(tile_path(Some(0), 0, None), "tile/0/000");
    assert_eq!(tile_path(Some(1), 1_234_067, None), "tile/1/x001/x234/067");
    assert_eq!(tile_path(None, 5, Some(17)), "tile/entries/005.p/17");
    assert_eq!(
        tile_path(None, 1000, Some(TILE_WIDTH)),
        "tile/entries/x001/000"
    );
}

#[test]
fn tile_levels_follow_the_size_and_the_edge_never_overflows_a_shift() {
    assert_eq!(tile_levels(0), 0);
    assert_eq!(tile_levels(1), 1);
    assert_eq!(tile_levels(255), 1);
    assert_eq!(tile_levels(256), 2);
    assert_eq!(tile_levels(65_535), 2);
    assert_eq!(tile_levels(65_536), 3);
    assert_eq!(tile_levels(u64::MAX), 8);
    let edge = TreeEdge::new();
    for level in [0, 6, 7, 8, 63, 200, 255] {
        assert!(edge.holds(level, 0), "level {level}");
        assert!(!edge.holds(level, 1), "level {level}");
    }
}
