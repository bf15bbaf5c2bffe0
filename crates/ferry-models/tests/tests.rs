//! ferry-models' integration tests: VADER against the reference implementation's own scores,
//! its rules one by one, the seed-001 result shape, and both handlers, alone and in an engine.

#![allow(clippy::unwrap_used)]

use ferry_core::{Batch, BatchOutcome, Engine, EngineConfig, Handler, Item, ItemOutcome};
use ferry_models::sentiment::{
    analyze, predict, Label, Prediction, Sentiment, SentimentHandler, SentimentJsonHandler,
    EXPECTED_TEXT, MODEL_NAME,
};
use serde_json::{json, Value};

/// `analyze(text).compound` is within `tol` of `expected`.
macro_rules! assert_compound {
    ($text:expr, $expected:expr) => {
        assert_compound!($text, $expected, 1e-4)
    };
    ($text:expr, $expected:expr, $tol:expr) => {{
        let s = analyze($text);
        assert!(
            (s.compound - $expected).abs() <= $tol,
            "{:?}: compound {} (want {})",
            $text,
            s.compound,
            $expected
        );
        s
    }};
}

fn compound(text: &str) -> f64 {
    analyze(text).compound
}

fn batch<T>(payloads: impl IntoIterator<Item = T>) -> Batch<T> {
    Batch::new(
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| Item::new(format!("k{i}"), i as u64, p))
            .collect(),
    )
}

// ---- the reference ---------------------------------------------------------------------

#[test]
fn reference_compound_scores() {
    // The values the vaderSentiment README and demo print (rounded to 4 decimals).
    assert_compound!("VADER is smart, handsome, and funny.", 0.8316);
    assert_compound!("VADER is not smart, handsome, nor funny.", -0.7424);
    assert_compound!("The book was good.", 0.4404);
    assert_compound!("At least it isn't a horrible book.", 0.431);
    assert_compound!("Today SUX!", -0.5461);
    assert_compound!("Not bad at all", 0.431);
    assert_compound!("VADER is smart, handsome, and funny!", 0.8439);
    assert_compound!("VADER is very smart, handsome, and funny.", 0.8545);
    assert_compound!("VADER is VERY SMART, handsome, and FUNNY.", 0.9227);
    assert_compound!("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342);
    assert_compound!(
        "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
        0.9469
    );
    assert_compound!("The book was only kind of good.", 0.3832);
    assert_compound!(
        "The plot was good, but the characters are uncompelling and the dialog is not great.",
        -0.7042
    );
    assert_compound!("Today only kinda sux! But I'll get by, lol", 0.5249);
    assert_compound!("Make sure you :) or :D today!", 0.8633);
    assert_compound!("Catch utf-8 emoji such as 💘 and 💋 and 😁", 0.875);
}

#[test]
fn reference_proportions() {
    let s = analyze("VADER is smart, handsome, and funny.");
    assert!((s.pos - 0.746).abs() < 5e-4, "{s:?}");
    assert!((s.neu - 0.254).abs() < 5e-4, "{s:?}");
    assert_eq!(s.neg, 0.0);
    let s = analyze("VADER is not smart, handsome, nor funny.");
    assert!((s.neg - 0.646).abs() < 5e-4, "{s:?}");
    assert!((s.neu - 0.354).abs() < 5e-4, "{s:?}");
}

/// 1,574 texts (the package's demo sentences, edge cases and generated sentences that hit
/// every rule) scored by vaderSentiment 3.3.2 with rounding switched off; see
/// `tests/data/gen_vader_reference.py`.
#[test]
fn matches_the_reference_implementation_on_1574_texts() {
    let data = include_str!("data/vader_reference.jsonl");
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in data.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let want = |k: &str| row[k].as_f64().unwrap();
        let got = analyze(text);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9;
        if !(close(got.compound, want("compound"))
            && close(got.pos, want("pos"))
            && close(got.neg, want("neg"))
            && close(got.neu, want("neu")))
        {
            mismatches.push(format!("{text:?}: got {got:?}, want {row}"));
        }
        assert!((0.0..=1.0).contains(&got.score), "{text:?}: {got:?}");
        assert_eq!(got.label, Label::from_compound(got.compound));
        checked += 1;
    }
    assert_eq!(checked, 1574);
    assert!(
        mismatches.is_empty(),
        "{} of {checked} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---- the rules -------------------------------------------------------------------------

#[test]
fn negation_flips_and_dampens() {
    let good = compound("The food was good.");
    let not_good = compound("The food was not good.");
    assert!(good > 0.05 && not_good < -0.05, "{good} {not_good}");
    assert!(not_good.abs() < good, "negation scales by 0.74");
    // Contractions negate, and so does a negation up to three words back.
    assert!(compound("The food wasn't good.") < 0.0);
    assert!(compound("The food isn't very good.") < 0.0);
    // "never so" intensifies instead; "without doubt" leaves the valence alone.
    assert!(compound("It was never so good") > good);
    assert_compound!("Without a doubt, excellent idea.", 0.7013);
    // "no" before a lexicon word negates it rather than counting as negative itself.
    assert!(compound("no problems") > 0.0);
}

#[test]
fn but_shifts_weight_to_the_second_clause() {
    let s = compound("The food was great, but the service was terrible.");
    let plain = compound("The food was great and the service was terrible.");
    assert!(s < plain, "{s} {plain}");
    assert!(s < -0.05);
    assert!(compound("The service was terrible, but the food was great.") > 0.05);
}

#[test]
fn all_caps_emphasise_only_among_lower_case_words() {
    let lower = compound("The movie was great.");
    let caps = compound("The movie was GREAT.");
    assert!(caps > lower, "{caps} {lower}");
    // All words in capitals: no contrast, no emphasis.
    assert_eq!(compound("GREAT MOVIE"), compound("great movie"));
}

#[test]
fn exclamation_marks_add_up_to_four() {
    let one = compound("The movie was great!");
    let three = compound("The movie was great!!!");
    let four = compound("The movie was great!!!!");
    let nine = compound("The movie was great!!!!!!!!!");
    assert!(compound("The movie was great.") < one && one < three && three < four);
    assert_eq!(four, nine);
    // Question marks count from two.
    assert_eq!(
        compound("Is the movie great?"),
        compound("Is the movie great")
    );
    assert!(compound("Is the movie great??") > compound("Is the movie great"));
}

#[test]
fn boosters_and_dampeners() {
    let plain = compound("The movie was good.");
    assert!(compound("The movie was extremely good.") > plain);
    assert!(compound("The movie was slightly good.") < plain);
    assert!(compound("The movie was sort of good.") < plain);
    assert!(compound("The movie was extremely bad.") < compound("The movie was bad."));
}

#[test]
fn emoticons_and_emoji() {
    assert!(compound("see you later :)") > 0.05);
    assert!(compound("see you later :(") < -0.05);
    assert!(compound("see you later <3") > 0.05);
    assert!(compound("see you later 😁") > 0.05);
    assert!(compound("see you later 😠") < -0.05);
    // An emoji glued to a word becomes its own words.
    assert_eq!(compound("later😁"), compound("later 😁"));
    assert_eq!(analyze("🙂").label, Label::Positive);
}

#[test]
fn idioms_and_least() {
    assert!(compound("Most automated sentiment analysis tools are shit.") < 0.0);
    assert!(compound("With VADER, sentiment analysis is the shit!") > 0.5);
    // "kiss" is positive, but "kiss of death" overrides "death" with -1.5.
    assert_compound!("the kiss of death for this band", 0.0772);
    let least = compound("one of the least compelling variations");
    let at_least = compound("it is at least compelling");
    assert!(least < 0.0 && at_least > 0.0, "{least} {at_least}");
}

// ---- labels and scores -----------------------------------------------------------------

#[test]
fn labels_and_confidence() {
    let s = analyze("I love this product! It is amazing.");
    assert_eq!(s.label, Label::Positive);
    assert_eq!(s.score, s.compound);
    let s = analyze("This is terrible and disappointing.");
    assert_eq!(s.label, Label::Negative);
    assert_eq!(s.score, -s.compound);
    let s = analyze("It is a chair with four legs.");
    assert_eq!((s.label, s.compound, s.score), (Label::Neutral, 0.0, 1.0));
    // Mixed feelings that cancel: neutral, with low confidence.
    let s = analyze("I like it and I dislike it");
    assert_eq!(s.label, Label::Neutral, "{s:?}");
    assert!(s.score < 0.5, "{s:?}");
    assert_eq!(s.score, s.neu);
    // Nothing to score.
    for empty in ["", "   \n\t"] {
        let s = analyze(empty);
        assert_eq!(
            s,
            Sentiment {
                label: Label::Neutral,
                score: 1.0,
                compound: 0.0,
                pos: 0.0,
                neg: 0.0,
                neu: 0.0
            }
        );
    }
}

#[test]
fn label_thresholds_are_inclusive() {
    assert_eq!(Label::from_compound(1.0), Label::Positive);
    assert_eq!(Label::from_compound(0.05), Label::Positive);
    assert_eq!(Label::from_compound(0.049_999), Label::Neutral);
    assert_eq!(Label::from_compound(0.0), Label::Neutral);
    assert_eq!(Label::from_compound(-0.049_999), Label::Neutral);
    assert_eq!(Label::from_compound(-0.05), Label::Negative);
    assert_eq!(Label::from_compound(-1.0), Label::Negative);
}

// ---- the seed-001 shape ----------------------------------------------------------------

#[test]
fn prediction_json_has_the_seed_field_names() {
    let p = predict("I love this product! It is amazing.");
    let v = serde_json::to_value(&p).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "label",
            "score",
            "inference_time_ms",
            "model_name",
            "text_length",
            "backend",
            "cached"
        ]
    );
    assert_eq!(v["label"], "POSITIVE");
    assert_eq!(v["model_name"], MODEL_NAME);
    assert_eq!(v["backend"], "ferry");
    assert_eq!(v["cached"], false);
    assert_eq!(v["text_length"], 35);
    assert!(v["inference_time_ms"].as_f64().unwrap() >= 0.0);
    let back: Prediction = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);

    // The seed's own example result parses.
    let seed: Prediction = serde_json::from_value(json!({
        "label": "POSITIVE", "score": 0.95, "inference_time_ms": 45.2,
        "model_name": "distilbert-base-uncased-finetuned-sst-2-english",
        "text_length": 32, "backend": "async_batch", "cached": false
    }))
    .unwrap();
    assert_eq!(seed.label, Label::Positive);
    assert_eq!(predict("été 😁").text_length, 5);
}

#[test]
fn labels_serialise_in_capitals() {
    assert_eq!(
        serde_json::to_string(&[Label::Positive, Label::Negative, Label::Neutral]).unwrap(),
        r#"["POSITIVE","NEGATIVE","NEUTRAL"]"#
    );
    assert_eq!(Label::Negative.to_string(), "NEGATIVE");
    let s: Sentiment =
        serde_json::from_value(serde_json::to_value(analyze("good")).unwrap()).unwrap();
    assert_eq!(s, analyze("good"));
}

// ---- handlers --------------------------------------------------------------------------

#[tokio::test]
async fn string_handler_scores_in_order() {
    let texts = ["The book was good.", "Today SUX!", "It is a chair."];
    let outcome = SentimentHandler::new().call(&batch(texts)).await;
    let BatchOutcome::Done(outcomes) = outcome else {
        panic!("{outcome:?}")
    };
    let labels: Vec<Label> = outcomes
        .iter()
        .map(|o| match o {
            ItemOutcome::Ok(p) => p.label,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(labels, [Label::Positive, Label::Negative, Label::Neutral]);
    // Owned strings too.
    let owned = batch(texts.map(String::from));
    assert!(matches!(
        SentimentHandler::new().call(&owned).await,
        BatchOutcome::Done(v) if v.len() == 3
    ));
}

#[tokio::test]
async fn json_handler_takes_strings_and_text_fields_and_rejects_the_rest() {
    let payloads = vec![
        json!("The book was good."),
        json!({"text": "Today SUX!", "id": 3}),
        json!({"body": "no text field"}),
        json!({"text": 42}),
        json!(7),
        json!(null),
        json!(["a list"]),
        json!({"text": ""}),
    ];
    let outcome = SentimentJsonHandler::new().call(&batch(payloads)).await;
    let BatchOutcome::Done(outcomes) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(outcomes.len(), 8);
    let ok = |o: &ItemOutcome<Value>| match o {
        ItemOutcome::Ok(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ok(&outcomes[0])["label"], "POSITIVE");
    assert_eq!(ok(&outcomes[0])["text_length"], 18);
    assert_eq!(ok(&outcomes[1])["label"], "NEGATIVE");
    let p: Prediction = serde_json::from_value(ok(&outcomes[1])).unwrap();
    assert_eq!(p.model_name, MODEL_NAME);
    for bad in &outcomes[2..7] {
        assert_eq!(bad, &ItemOutcome::Fatal(EXPECTED_TEXT.to_owned()));
    }
    assert_eq!(
        EXPECTED_TEXT,
        "expected a string or an object with a text field"
    );
    assert_eq!(ok(&outcomes[7])["label"], "NEUTRAL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_runs_the_json_handler_and_dead_letters_bad_payloads() {
    let items = (0..1000u64).map(|i| {
        let payload = match i % 100 {
            0 => json!({"no": "text"}),
            // No numbers in the texts: "143" and others are in the lexicon.
            n if n % 2 == 0 => json!("The service was really great!"),
            _ => json!({"text": "The service was awful", "i": i}),
        };
        Item::new(i, i, payload)
    });
    let mut running = Engine::new(EngineConfig::standard(), SentimentJsonHandler::new())
        .unwrap()
        .emit_settled(64)
        .start();
    let mut settled = running.take_settled().unwrap();
    let collector = tokio::spawn(async move {
        let mut results = Vec::new();
        while let Some(batch) = settled.recv().await {
            results.extend(batch);
        }
        results
    });
    let intake = running.intake();
    for item in items {
        intake.push(item).await.unwrap();
    }
    drop(intake);
    let report = running.finish().await.unwrap();
    assert_eq!(report.progress.succeeded, 990);
    assert_eq!(report.progress.dead_lettered, 10);
    for s in collector.await.unwrap() {
        match s {
            ferry_core::Settled::Succeeded { item, result } => {
                let want = if item.index() % 2 == 0 {
                    "POSITIVE"
                } else {
                    "NEGATIVE"
                };
                assert_eq!(result["label"], want, "{:?}", item.payload());
            }
            ferry_core::Settled::DeadLettered(d) => {
                assert_eq!(d.item.index() % 100, 0);
                assert!(d.error.contains(EXPECTED_TEXT), "{}", d.error);
            }
            ferry_core::Settled::Cancelled(item) => panic!("cancelled {:?}", item.key()),
        }
    }
}
