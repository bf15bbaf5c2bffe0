//! Property tests over random and mutated input: the splitter, the parser and the mapper
//! never panic, and every record either maps or names its error. CI runs them with the
//! default case count (a fixed budget of a few seconds).

use proptest::prelude::*;

use super::dom;
use super::mapping::{Field, Mapping, Path};
use super::split::{Piece, Splitter};

fn mapping() -> Mapping {
    Mapping {
        columns: vec![
            ("id".into(), Field::parse("@id as integer").unwrap()),
            ("name".into(), Field::parse("c/name").unwrap()),
            ("when".into(), Field::parse("d as date").unwrap()),
            ("n".into(), Field::parse("count(i)").unwrap()),
            (
                "items".into(),
                Field::List(
                    Path::parse("i").unwrap(),
                    vec![("q".into(), Field::parse("@q as decimal").unwrap())],
                ),
            ),
        ],
    }
}

/// Splits, parses and maps `input`: (records mapped, records refused); panics only if a
/// refusal has no reason or an offset lies outside the input.
fn run(input: &[u8]) -> (usize, usize) {
    let m = mapping();
    let mut splitter = Splitter::new(input, "r");
    let (mut ok, mut bad) = (0, 0);
    let mut pieces = 0;
    while let Ok(Some(piece)) = splitter.next_piece() {
        pieces += 1;
        assert!(pieces <= input.len() + 1, "the splitter does not end");
        match piece {
            Piece::Record { offset, bytes } => {
                let end = offset as usize + bytes.len();
                assert_eq!(input.get(offset as usize..end), Some(bytes.as_slice()));
                let mut hits = [false; 5];
                match dom::parse(&bytes).and_then(|el| m.apply(&el, &mut hits)) {
                    Ok(_) => ok += 1,
                    Err(reason) => {
                        assert!(!reason.is_empty());
                        bad += 1;
                    }
                }
            }
            Piece::Bad { offset, message } => {
                assert!(offset as usize <= input.len() && !message.is_empty());
                bad += 1;
            }
        }
    }
    (ok, bad)
}

const GOOD: &str = "<rs><r id=\"1\"><c><name>a &amp; b</name></c><d>2024-02-29</d><i q=\"1.5\"/><i q=\"2\"/></r>\n<r id=\"2\"><![CDATA[x]]><d>2024-01-01</d></r><!-- c --><r id=\"3\"/></rs>";

#[test]
fn the_unmutated_document_maps_every_record() {
    assert_eq!(run(GOOD.as_bytes()), (3, 0));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        run(&input);
    }

    #[test]
    fn random_xmlish_text_never_panics(input in "(<r( id=\"[0-9a-z]{0,3}\")?>|</r>|<c>|</c>|<name>|</name>|<d>|</d>|<i q=\"[0-9.]{0,4}\"/>|&amp;|&bogus;|<!\\[CDATA\\[|\\]\\]>|<!--|-->|[a-z0-9 ]{0,4}|\u{e9}|\\xff){0,40}") {
        run(input.as_bytes());
    }

    #[test]
    fn mutated_documents_never_panic(
        cuts in proptest::collection::vec((0usize..GOOD.len(), any::<u8>()), 1..6),
        truncate in 0usize..=GOOD.len(),
    ) {
        let mut bytes = GOOD.as_bytes().to_vec();
        for (at, b) in cuts {
            bytes[at] = b;
        }
        bytes.truncate(truncate.max(1));
        run(&bytes);
    }
}
