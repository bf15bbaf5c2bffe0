//! Building SQLite statement text: id lists as one JSON array (read with `json_each`), and
//! the numbered placeholders of multi-row `INSERT`s.

use serde_json::Value;

/// Rows per multi-row `INSERT` (two bound values each, well under SQLite's 32,766).
pub(super) const INSERT_CHUNK: usize = 500;

/// Ids as the JSON array that `json_each($n)` reads.
pub(super) fn id_list(ids: &[i64]) -> String {
    Value::from(ids.to_vec()).to_string()
}

/// `VALUES` rows of `width` placeholders each, numbered from `$first`, around `fixed`
/// (a row's text with `{}` where the placeholders go).
pub(super) fn values(rows: usize, first: usize, width: usize, fixed: &str) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        let params: Vec<String> = (0..width)
            .map(|c| format!("${}", first + r * width + c))
            .collect();
        out.push_str(&fixed.replace("{}", &params.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_number_placeholders_row_by_row() {
        assert_eq!(
            values(2, 4, 2, "($1, {}, $2)"),
            "($1, $4, $5, $2), ($1, $6, $7, $2)"
        );
        assert_eq!(values(1, 2, 2, "({}, $1)"), "($2, $3, $1)");
        assert_eq!(id_list(&[3, 1]), "[3,1]");
    }
}
