//! Building SQLite statement text: id lists as one JSON array (read with `json_each`).

use serde_json::Value;

/// Ids as the JSON array that `json_each($n)` reads.
pub(super) fn id_list(ids: &[i64]) -> String {
    Value::from(ids.to_vec()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_json_arrays() {
        assert_eq!(id_list(&[3, 1]), "[3,1]");
        assert_eq!(id_list(&[]), "[]");
    }
}
