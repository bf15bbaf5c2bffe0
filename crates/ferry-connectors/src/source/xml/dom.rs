//! One record's bytes parsed into a small element tree, with XML's rules honoured: end
//! tags must match, attributes must be unique and well-formed, entity and character
//! references are decoded in text and attribute values, CDATA sections are taken as they
//! are, names and text must be UTF-8. Comments and processing instructions are skipped.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Elements nested deeper than this make the record bad (a guard against inputs built to
/// exhaust memory or the stack).
const MAX_DEPTH: usize = 256;

/// An element: its local name, attributes (local names), own text (text and CDATA directly
/// inside it, in order) and child elements in document order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) children: Vec<Element>,
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| format!("{what} is not valid UTF-8 (after byte {})", e.valid_up_to()))
}

fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let name = utf8(start.local_name().as_ref(), "an element name")?;
    let mut attrs = Vec::new();
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| format!("<{name}>: bad attribute: {e}"))?;
        let key = utf8(attr.key.local_name().as_ref(), "an attribute name")?;
        let value = attr
            .unescape_value()
            .map_err(|e| format!("<{name} {key}>: {e}"))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

/// Parses one record: exactly one element (whitespace, comments and processing
/// instructions around it are allowed). The message of an error says what is wrong in
/// XML's terms, with the byte offset inside the record where quick-xml gives one.
pub(super) fn parse(bytes: &[u8]) -> Result<Element, String> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("content after the record's end tag".into());
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                stack.push(element(&e)?);
            }
            Event::Empty(e) => {
                let el = element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err("content after the record's end tag".into()),
                }
            }
            Event::End(_) => {
                // quick-xml checked that the name matches the open element.
                let Some(done) = stack.pop() else {
                    return Err("an end tag without its start tag".into());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| match utf8(&t, "text") {
                    Err(not_utf8) => not_utf8,
                    Ok(_) => format!("bad text or entity reference: {e}"),
                })?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the record element".into()),
                }
            }
            Event::CData(c) => {
                let text = utf8(&c.into_inner(), "a CDATA section")?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&text),
                    None => return Err("a CDATA section outside the record element".into()),
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE inside a record".into()),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> is not closed", open.name));
    }
    root.ok_or_else(|| "no element in the record".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_cdata_attributes_and_children() {
        let el = parse(
            b"<x:order id=\"7\" x:note=\"a &amp; b &#x263A;\">pre<![CDATA[<raw> & ]]>&lt;post&gt;<item n=\"1\"/><item n=\"2\">two</item></x:order>",
        )
        .unwrap();
        assert_eq!(el.name, "order");
        assert_eq!(
            el.attrs,
            vec![
                ("id".to_owned(), "7".to_owned()),
                ("note".to_owned(), "a & b \u{263A}".to_owned())
            ]
        );
        assert_eq!(el.text, "pre<raw> & <post>");
        assert_eq!(el.children.len(), 2);
        assert_eq!(el.children[1].text, "two");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"<a><b></a>", "not well-formed"),
            (b"<a>&nope;</a>", "entity"),
            (b"<a x=\"1\" x=\"2\"/>", "bad attribute"),
            (b"<a>\xff</a>", "UTF-8"),
            (b"<a><b>", "<b> is not closed"),
            (b"<a/><b/>", "content after"),
            (b"  ", "no element"),
        ];
        for (input, want) in cases {
            let err = parse(input).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "<a>".repeat(10_000);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
    }
}
