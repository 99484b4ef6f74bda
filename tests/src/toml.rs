//! Editing the TOML files of a test's world (proxy.toml, services.toml, the CLI's
//! config.toml) as documents: a change lands in the table it is meant for, whatever the
//! file's layout, and the rest of the file stays as it was.

use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

/// Reads `path`, applies `edit`, and writes the document back.
pub fn edit(path: &Path, edit: impl FnOnce(&mut DocumentMut)) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut doc: DocumentMut = text
        .parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
    edit(&mut doc);
    std::fs::write(path, doc.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Parses a TOML fragment written in a test (e.g. `[storage]\nreserve = "8MiB"`).
pub fn fragment(text: &str) -> DocumentMut {
    text.parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
}

/// Merges every table and array of tables of `fragment` into `doc`: keys of a table
/// replace the document's, entries of an array of tables are appended.
pub fn merge(doc: &mut DocumentMut, text: &str) {
    for (key, item) in fragment(text).iter() {
        match item {
            Item::Table(table) => {
                let target = doc
                    .entry(key)
                    .or_insert_with(|| Item::Table(Table::new()))
                    .as_table_mut()
                    .unwrap_or_else(|| panic!("{key} is not a table"));
                for (k, v) in table.iter() {
                    target.insert(k, v.clone());
                }
            }
            Item::ArrayOfTables(array) => {
                let target = doc
                    .entry(key)
                    .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
                    .as_array_of_tables_mut()
                    .unwrap_or_else(|| panic!("{key} is not an array of tables"));
                for table in array.iter() {
                    target.push(table.clone());
                }
            }
            other => {
                doc.insert(key, other.clone());
            }
        }
    }
}

/// Appends `text` (tables and arrays of tables) to the TOML file at `path`.
pub fn append(path: &Path, text: &str) {
    edit(path, |doc| merge(doc, text));
}

/// The `[[service]]` of a catalog document named `name`.
pub fn service<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut Table {
    doc["service"]
        .as_array_of_tables_mut()
        .and_then(|services| {
            services
                .iter_mut()
                .find(|s| s.get("name").and_then(Item::as_str) == Some(name))
        })
        .unwrap_or_else(|| panic!("the catalog has no service {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sets_keys_and_appends_tables() {
        let mut doc = fragment("id = \"a\"\n\n[limits]\nmax_connections = 5\n");
        merge(
            &mut doc,
            "[limits]\nmax_connections = 7\n\n[[notify]]\nurl = \"u\"\n",
        );
        merge(&mut doc, "[[notify]]\nurl = \"v\"\n");
        assert_eq!(doc["limits"]["max_connections"].as_integer(), Some(7));
        assert_eq!(doc["notify"].as_array_of_tables().unwrap().len(), 2);
        assert_eq!(doc["id"].as_str(), Some("a"));
    }
}
