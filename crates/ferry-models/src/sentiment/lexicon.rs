//! The word lists VADER scores with: the embedded valence lexicon and emoji table (parsed
//! once, into hash maps keyed as the reference keys them) and the small fixed lists of
//! boosters, negations and idioms that the rules consult.
//!
//! Data source: the PyPI wheel `vaderSentiment-3.3.2-py2.py3-none-any.whl`
//! (<https://github.com/cjhutto/vaderSentiment>), files copied verbatim (CRLF line ends kept):
//!
//! | file | sha256 |
//! |---|---|
//! | `data/vader_lexicon.txt` (7,520 lines) | `1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5` |
//! | `data/emoji_utf8_lexicon.txt` (3,570 lines) | `b8d54223ae1ce22a3e12c1f745316b71678c328eb5f5d3063a842f37cfbe2823` |
//!
//! Both are MIT licensed, Copyright (c) 2016 C.J. Hutto; the licence text is
//! `data/LICENSE-vaderSentiment.txt`. The word lists below are transcribed from the same
//! package's `vaderSentiment.py` (same licence).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// `word<TAB>mean valence<TAB>std dev<TAB>ten raw ratings`, one entry a line.
const VADER_LEXICON: &str = include_str!("data/vader_lexicon.txt");
/// `emoji<TAB>textual description`, one entry a line.
const EMOJI_LEXICON: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// Increment a booster word adds to (or, for negative valence, takes from) the next words.
pub(crate) const B_INCR: f64 = 0.293;
/// Decrement a dampener word applies.
pub(crate) const B_DECR: f64 = -0.293;

/// What the rules need to know about a lower-cased word, from one lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Word {
    /// Its valence in the lexicon.
    pub(crate) valence: Option<f64>,
    /// Its booster or dampener increment ([`booster`]).
    pub(crate) booster: Option<f64>,
    /// Whether it is in the negation list (`NEGATE`; the "n't" rule is applied per token).
    pub(crate) negation: bool,
}

/// The lexicon's words, keyed exactly as in the file (lookups use the lower-cased token, so
/// the few keys with capitals, such as `:D`, are unreachable there too), merged with the
/// boosters and negations.
pub(crate) static WORDS: LazyLock<FastMap<&'static str, Word>> = LazyLock::new(|| {
    let mut words: FastMap<&'static str, Word> = parse_lexicon(VADER_LEXICON)
        .into_iter()
        .map(|(w, v)| {
            let word = Word {
                valence: Some(v),
                ..Word::default()
            };
            (w, word)
        })
        .collect();
    for &w in INCREMENTS.iter().chain(DECREMENTS).chain(NEGATIONS) {
        let word = words.entry(w).or_default();
        word.booster = booster(w);
        word.negation = NEGATIONS.contains(&w);
    }
    words
});

/// Descriptions of the emoji that are one `char` long: the reference replaces emoji char
/// by char, so the multi-char sequences in the table (flags, skin tones, keycaps) never match.
pub(crate) static EMOJI: LazyLock<FastMap<char, &'static str>> =
    LazyLock::new(|| parse_emoji(EMOJI_LEXICON));

/// Parses the embedded lexicon and emoji table now, so that the first text scored does not
/// pay for it (about a millisecond). Calling it again does nothing.
pub fn preload() {
    LazyLock::force(&WORDS);
    LazyLock::force(&EMOJI);
}

/// Splits the reference's way: drop one trailing newline run, split on `\n`, strip each line
/// (which removes the CR), take the first two tab-separated fields; later duplicates win.
fn parse_lexicon(text: &'static str) -> FastMap<&'static str, f64> {
    let mut map = FastMap::with_capacity_and_hasher(7600, Default::default());
    for line in text.trim_end_matches('\n').split('\n') {
        let line = line.trim();
        let mut fields = line.split('\t');
        let (Some(word), Some(measure)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(v) = measure.trim().parse::<f64>() {
            map.insert(word, v);
        }
    }
    map
}

fn parse_emoji(text: &'static str) -> FastMap<char, &'static str> {
    let mut map = FastMap::with_capacity_and_hasher(1300, Default::default());
    for line in text.trim_end_matches('\n').split('\n') {
        let line = line.trim();
        let mut fields = line.split('\t');
        let (Some(emoji), Some(description)) = (fields.next(), fields.next()) else {
            continue;
        };
        let mut chars = emoji.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            map.insert(c, description);
        }
    }
    map
}

/// `BOOSTER_DICT`'s one-word boosters, which add [`B_INCR`].
const INCREMENTS: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

/// `BOOSTER_DICT`'s one-word dampeners, which add [`B_DECR`].
const DECREMENTS: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// `NEGATE`.
const NEGATIONS: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// The booster/dampener increment of a single lower-cased word (`BOOSTER_DICT`).
pub(crate) fn booster(word: &str) -> Option<f64> {
    if INCREMENTS.contains(&word) {
        Some(B_INCR)
    } else if DECREMENTS.contains(&word) {
        Some(B_DECR)
    } else {
        None
    }
}

/// The two-word entries of `BOOSTER_DICT` ("just enough", "kind of", "sort of"), which only
/// the idiom check can reach, since tokens never contain spaces.
pub(crate) fn booster_bigram(a: &str, b: &str) -> Option<f64> {
    match (a, b) {
        ("just", "enough") | ("kind", "of") | ("sort", "of") => Some(B_DECR),
        _ => None,
    }
}

/// Whether a lower-cased word negates what follows (`NEGATE`, or containing "n't").
#[cfg(test)]
pub(crate) fn is_negation(word: &str) -> bool {
    NEGATIONS.contains(&word) || word.contains("n't")
}

/// The valence of a special-case phrase of lower-cased words (`SPECIAL_CASES`). Its one-word
/// key, "badass", can never match a joined sequence, so it is left out.
pub(crate) fn special_case(words: &[&str]) -> Option<f64> {
    Some(match words {
        ["the", "shit"] | ["the", "bomb"] | ["to", "die", "for"] => 3.0,
        ["bad", "ass"] => 1.5,
        ["bus", "stop"] => 0.0,
        ["yeah", "right"] => -2.0,
        ["kiss", "of", "death"] => -1.5,
        ["beating", "heart"] => 3.5,
        _ => return None,
    })
}

/// A `HashMap` with a fast, non-keyed hash (FxHash, as in rustc). The tables are fixed and
/// only looked up, so flooding them is not possible and SipHash's cost buys nothing.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The Fx hash: a multiply-rotate over machine words.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicon_parses_every_line() {
        // 7,520 lines with 14 duplicate words: the reference's dict has 7,506 entries.
        let lexicon = parse_lexicon(VADER_LEXICON);
        assert_eq!(lexicon.len(), 7506);
        assert_eq!(lexicon.get("good"), Some(&1.9));
        assert_eq!(lexicon.get("sux"), Some(&-1.5));
        assert_eq!(lexicon.get(":)"), Some(&2.0));
        assert_eq!(lexicon.get("can't stand"), Some(&-2.0));
    }

    #[test]
    fn words_merge_lexicon_boosters_and_negations() {
        let valence = |w: &str| WORDS.get(w).and_then(|w| w.valence);
        assert_eq!(valence("good"), Some(1.9));
        assert_eq!(WORDS.values().filter(|w| w.valence.is_some()).count(), 7506);
        assert_eq!(WORDS.values().filter(|w| w.booster.is_some()).count(), 81);
        assert_eq!(WORDS.values().filter(|w| w.negation).count(), 59);
        // Some words are in several lists: "no" the rules handle apart; "kind" is a word.
        let cant = WORDS.get("can't").copied().unwrap_or_default();
        assert!(cant.negation);
        let so = WORDS.get("so").copied().unwrap_or_default();
        assert_eq!(so.booster, Some(B_INCR));
    }

    #[test]
    fn emoji_table_keeps_single_chars_only() {
        // 1,212 of the 3,570 entries are one code point long.
        assert_eq!(EMOJI.len(), 1212);
        assert_eq!(EMOJI.get(&'😁'), Some(&"beaming face with smiling eyes"));
        assert!(EMOJI.keys().all(|c| !c.is_ascii()));
    }

    #[test]
    fn word_lists() {
        assert_eq!(booster("very"), Some(B_INCR));
        assert_eq!(booster("sorta"), Some(B_DECR));
        assert_eq!(booster("good"), None);
        assert_eq!(booster_bigram("kind", "of"), Some(B_DECR));
        assert!(is_negation("not") && is_negation("shouldn't") && is_negation("ain't"));
        assert!(is_negation("haven't") && !is_negation("no") && !is_negation("nice"));
        assert_eq!(special_case(&["kiss", "of", "death"]), Some(-1.5));
        assert_eq!(special_case(&["the", "book"]), None);
    }

    #[test]
    fn fx_hash_distinguishes_lengths() {
        let h = |s: &str| {
            let mut f = FxHasher::default();
            f.write(s.as_bytes());
            f.finish()
        };
        assert_ne!(h("a"), h("a\0"));
        assert_ne!(h("good"), h("goo"));
    }
}
