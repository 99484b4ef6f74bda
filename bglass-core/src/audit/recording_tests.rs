use super::*;

/// A recording of `chunks` chunks of 100 frames' worth each, written to `dir`, and the
/// log's view of it (with an end entry when `ended`).
fn written(dir: &Path, chunks: usize, ended: bool) -> Recording {
    let mut file = Vec::new();
    let mut listed = Vec::new();
    for c in 0..chunks {
        let mut chunk = Vec::new();
        encode(
            &mut chunk,
            FrameKind::Output,
            0,
            c as u64 * 1000,
            format!("chunk {c} says hello\r\n").as_bytes(),
        );
        listed.push((10 + c as u64, ChunkDigest::of(&chunk)));
        file.extend_from_slice(&chunk);
    }
    std::fs::create_dir_all(dir.join(RECORDINGS_DIR)).unwrap();
    std::fs::write(dir.join(RECORDINGS_DIR).join("s1.rec"), &file).unwrap();
    Recording {
        session: "s1".to_owned(),
        responder: None,
        grant: GrantId::new("g-0123456789abcdef").unwrap(),
        service: "bastion".parse().unwrap(),
        user: "ops".to_owned(),
        start_index: 9,
        start_ms: 0,
        end: ended.then(|| RecordingEnd {
            index: 99,
            time_ms: 1,
            chunks: chunks as u64,
            bytes: file.len() as u64,
            sha256: sha256_hex(&file),
            reason: "eof".to_owned(),
        }),
        chunks: listed,
        misnumbered: None,
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join(RECORDINGS_DIR).join("s1.rec")
}

#[test]
fn frames_round_trip_and_a_cut_frame_is_named() {
    let mut bytes = Vec::new();
    encode(&mut bytes, FrameKind::Exec, 3, 42, b"uname -a");
    encode(&mut bytes, FrameKind::Output, 3, 43, &[0xff, 0, 1]);
    let (frames, error) = decode(&bytes);
    assert_eq!(error, None);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].kind, FrameKind::Exec);
    assert_eq!((frames[0].channel, frames[0].micros), (3, 42));
    assert_eq!(frames[1].data, vec![0xff, 0, 1]);
    let (frames, error) = decode(&bytes[..bytes.len() - 1]);
    assert_eq!(frames.len(), 1);
    assert_eq!(error, Some(FrameError::Partial(25)));
    let mut bad = bytes.clone();
    bad[0] = b'?';
    assert_eq!(decode(&bad).1, Some(FrameError::Malformed(0)));
}

#[test]
fn a_whole_recording_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let r = written(dir.path(), 5, true);
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Complete, "{}", found.detail);
    let (_, bytes) = read_verified(dir.path(), &r).unwrap();
    assert_eq!(decode(&bytes).0.len(), 5);
}

#[test]
fn a_flipped_byte_names_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let r = written(dir.path(), 5, true);
    let mut bytes = std::fs::read(file(dir.path())).unwrap();
    let at = r.chunks[0].1.bytes as usize * 2 + 20;
    bytes[at] ^= 1;
    std::fs::write(file(dir.path()), &bytes).unwrap();
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Altered);
    assert!(found.detail.starts_with("chunk 2 "), "{}", found.detail);
    assert!(found.detail.contains("is altered"), "{}", found.detail);
    assert_eq!(found.verified_chunks, 2);
}

#[test]
fn a_chunk_cut_out_is_named_missing() {
    let dir = tempfile::tempdir().unwrap();
    let r = written(dir.path(), 5, true);
    let bytes = std::fs::read(file(dir.path())).unwrap();
    let size = r.chunks[0].1.bytes as usize;
    let mut cut = bytes[..size].to_vec();
    cut.extend_from_slice(&bytes[2 * size..]);
    std::fs::write(file(dir.path()), &cut).unwrap();
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Altered);
    assert!(
        found.detail.starts_with("chunk 1 ") && found.detail.contains("is missing"),
        "{}",
        found.detail
    );
}

#[test]
fn a_cut_tail_is_truncated_and_a_missing_end_is_never_complete() {
    let dir = tempfile::tempdir().unwrap();
    let r = written(dir.path(), 5, true);
    let bytes = std::fs::read(file(dir.path())).unwrap();
    std::fs::write(file(dir.path()), &bytes[..bytes.len() - 7]).unwrap();
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Truncated);
    assert!(found.detail.contains("inside chunk 4"), "{}", found.detail);
    assert_eq!(found.verified_chunks, 4);

    let r = written(dir.path(), 3, false);
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Truncated);
    assert!(
        found.detail.contains("no recording_end"),
        "{}",
        found.detail
    );

    std::fs::remove_file(file(dir.path())).unwrap();
    assert_eq!(check(dir.path(), &r).unwrap().state, State::Missing);
}

#[test]
fn bytes_the_log_does_not_list_are_an_alteration() {
    let dir = tempfile::tempdir().unwrap();
    let r = written(dir.path(), 2, true);
    let mut bytes = std::fs::read(file(dir.path())).unwrap();
    encode(
        &mut bytes,
        FrameKind::Output,
        0,
        9,
        b"rm -rf / (never typed)",
    );
    std::fs::write(file(dir.path()), &bytes).unwrap();
    let found = check(dir.path(), &r).unwrap();
    assert_eq!(found.state, State::Altered);
    assert!(
        found.detail.contains("after its last chunk"),
        "{}",
        found.detail
    );
}

#[test]
fn an_id_that_is_not_a_file_name_is_refused() {
    assert!(valid_session_id("r-1700000000000-0a1b"));
    for bad in ["", "../x", "a/b", "A", &"a".repeat(65)] {
        assert!(!valid_session_id(bad), "{bad}");
        assert!(file_path(Path::new("/x"), bad).is_none());
    }
}

#[test]
fn a_transcript_shows_commands_and_output_without_terminal_controls_or_input() {
    let mut bytes = Vec::new();
    encode(&mut bytes, FrameKind::Exec, 0, 1, b"ls /etc");
    encode(&mut bytes, FrameKind::Input, 0, 2, b"secret-password\n");
    encode(
        &mut bytes,
        FrameKind::Output,
        0,
        3,
        b"\x1b[1;32mhosts\x1b[0m\r\n\x1b]0;title\x07passwd\n",
    );
    encode(&mut bytes, FrameKind::ExitStatus, 0, 4, b"0");
    let (frames, error) = decode(&bytes);
    assert_eq!(error, None);
    let (text, cut) = transcript(&frames, 1 << 20);
    assert!(!cut);
    assert_eq!(text, "$ ls /etc\nhosts\npasswd\n[exit status 0]\n");
    let (short, cut) = transcript(&frames, 12);
    assert!(cut);
    assert_eq!(short, "$ ls /etc\nho");
}
