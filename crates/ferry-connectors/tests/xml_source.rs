//! The XML source end to end: files in a fresh temporary directory (one file, a glob of
//! `.gz` files), a SQLite query's text column, and bad input (a malformed record, a failed
//! cast, invalid UTF-8, a truncated file): each bad record is named with its byte offset and
//! every good record of the same input is mapped.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use ferry_connectors::source::xml::{Field, Mapping, Path};
use ferry_connectors::source::{xml, KeyBy, XmlConfig, XmlInput};
use ferry_connectors::Error;
use futures_util::StreamExt;
use serde_json::{json, Value};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ferry-xml-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mapping() -> Mapping {
    Mapping {
        columns: vec![
            ("id".into(), Field::parse("@id as integer").unwrap()),
            ("name".into(), Field::parse("name").unwrap()),
            ("total".into(), Field::parse("total as decimal").unwrap()),
            (
                "items".into(),
                Field::List(
                    Path::parse("item").unwrap(),
                    vec![("sku".into(), Field::parse("@sku").unwrap())],
                ),
            ),
        ],
    }
}

fn config(input: XmlInput) -> XmlConfig {
    XmlConfig {
        input,
        record: "order".into(),
        mapping: mapping(),
        workers: 3,
    }
}

/// Every result of the stream: `Ok(payload)` or `Err((offset, message))` of a bad record.
async fn read_all(config: &XmlConfig) -> Vec<Result<Value, (String, u64, String)>> {
    let (mut stream, _) = xml(config, KeyBy::Column("id".into())).await.unwrap();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.push(match r {
            Ok(item) => Ok(item.payload().clone()),
            Err(Error::RecordAt {
                origin,
                offset,
                message,
            }) => Err((origin, offset, message)),
            Err(e) => panic!("not a record error: {e}"),
        });
    }
    out
}

fn order(i: u64) -> String {
    format!("<order id=\"{i}\"><name>n{i} &amp; <![CDATA[<co>]]></name><total>{i}.50</total><item sku=\"a{i}\"/><item sku=\"b{i}\"/></order>\n")
}

fn expected(i: u64) -> Value {
    json!({"id": i, "name": format!("n{i} & <co>"), "total": format!("{i}.50"),
           "items": [{"sku": format!("a{i}")}, {"sku": format!("b{i}")}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_in_order_across_a_glob_of_gz_files() {
    let dir = TempDir::new("glob");
    let mut all = Vec::new();
    for f in 0..3u64 {
        let path = dir.0.join(format!("part-{f}.xml.gz"));
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"<orders>\n").unwrap();
        for i in f * 1000..(f + 1) * 1000 {
            gz.write_all(order(i + 1).as_bytes()).unwrap();
            all.push(expected(i + 1));
        }
        gz.write_all(b"</orders>\n").unwrap();
        gz.finish().unwrap();
    }
    std::fs::write(dir.0.join("ignored.txt"), "x").unwrap();
    let got = read_all(&config(XmlInput::Files(dir.0.join("part-*.xml.gz")))).await;
    let got: Vec<Value> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(got.len(), 3000);
    assert_eq!(got, all, "every record, mapped, in document order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_named_and_the_good_ones_all_land() {
    let dir = TempDir::new("bad");
    let mut text = String::from("<orders>\n");
    text.push_str(&order(1));
    let malformed = text.len() as u64;
    text.push_str("<order id=\"2\"><name>x</total></order>\n");
    text.push_str(&order(3));
    let cast = text.len() as u64;
    text.push_str("<order id=\"4\"><total>12,50</total></order>\n");
    let no_key = text.len() as u64;
    text.push_str("<order><total>1</total></order>\n");
    let mut bytes = text.into_bytes();
    let utf8 = bytes.len() as u64;
    bytes.extend_from_slice(b"<order id=\"5\"><name>\xff\xfe</name></order>\n");
    bytes.extend_from_slice(order(6).as_bytes());
    let truncated = bytes.len() as u64;
    bytes.extend_from_slice(b"<order id=\"7\"><name>cut off he");
    let path = dir.0.join("bad.xml");
    std::fs::write(&path, &bytes).unwrap();
    let got = read_all(&config(XmlInput::Files(path.clone()))).await;
    let origin = path.display().to_string();
    let bad: Vec<(u64, String)> = got
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|(o, offset, m)| {
            assert_eq!(o, &origin);
            (*offset, m.clone())
        })
        .collect();
    let offsets: Vec<u64> = bad.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        [malformed, cast, no_key, utf8, truncated],
        "{bad:#?}"
    );
    assert!(bad[0].1.contains("expected `</name>`"), "{}", bad[0].1);
    assert_eq!(bad[1].1, "column `total`: `12,50` is not a decimal");
    assert_eq!(bad[2].1, "key column `id` is missing or empty");
    assert!(bad[3].1.contains("UTF-8"), "{}", bad[3].1);
    assert_eq!(bad[4].1, "the input ends inside <order> (truncated?)");
    let good: Vec<Value> = got.into_iter().filter_map(Result::ok).collect();
    assert_eq!(good, [expected(1), expected(3), expected(6)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_a_query_text_column() {
    let dir = TempDir::new("sql");
    let db = dir.0.join("docs.db");
    let url = format!("sqlite:{}", db.display());
    {
        use sqlx::Connection;
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&opts.create_if_missing(true))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE app_xml (id INTEGER PRIMARY KEY, doc TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        for i in 1..=50u64 {
            let doc = if i == 20 { None } else { Some(order(i)) };
            sqlx::query("INSERT INTO app_xml (id, doc) VALUES (?, ?)")
                .bind(i as i64)
                .bind(doc)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let got = read_all(&config(XmlInput::Query {
        url,
        query: "SELECT id, doc FROM app_xml ORDER BY id".into(),
        column: "doc".into(),
    }))
    .await;
    assert_eq!(got.len(), 50);
    assert_eq!(
        got[19],
        Err((
            "query row 20".to_owned(),
            0,
            "column `doc` holds null, not XML".to_owned()
        ))
    );
    assert_eq!(got[49], Ok(expected(50)));
}

#[tokio::test]
async fn a_glob_that_matches_nothing_is_one_clear_error() {
    let dir = TempDir::new("none");
    let err = xml(
        &config(XmlInput::Files(dir.0.join("*.xml"))),
        KeyBy::RowNumber,
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no file matches the pattern"), "{err}");
}
