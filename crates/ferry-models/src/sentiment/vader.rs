//! The VADER rules: tokenise, give each lexicon word a valence adjusted by its neighbours
//! (boosters, negations, ALL CAPS, "no", "least", idioms), shift weight after "but", add
//! punctuation emphasis, normalise.
//!
//! A transcription of `SentimentIntensityAnalyzer.polarity_scores` from `vaderSentiment`
//! 3.3.2, keeping its observable quirks so scores match the reference: tokens are split on
//! Python's whitespace and stripped of ASCII punctuation unless that leaves two characters or
//! fewer ("no." stays "no."); emoji are replaced char by char with their descriptions; the
//! "but" rule finds each value by its first equal value, as `list.index` does. Only the
//! final rounding differs: the reference rounds `compound` to 4 decimals and the proportions
//! to 3; [`analyze`] returns them unrounded.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::lexicon::{booster_bigram, special_case, FastMap, Word, EMOJI, WORDS};

/// The model's name as reported in [`Prediction::model_name`](super::Prediction): the
/// algorithm and the version of the reference package whose lexicon and rules it carries.
pub const MODEL_NAME: &str = "vader-lexicon-3.3.2";

/// `compound` at or above this is [`Label::Positive`] (VADER's standard threshold).
pub const POSITIVE_THRESHOLD: f64 = 0.05;
/// `compound` at or below this is [`Label::Negative`] (VADER's standard threshold).
pub const NEGATIVE_THRESHOLD: f64 = -0.05;

/// Rating increase of a word written in ALL CAPS among words that are not.
const C_INCR: f64 = 0.733;
/// What a negation multiplies a valence by.
const N_SCALAR: f64 = -0.74;
/// The normalisation's alpha: roughly the largest expected raw sum.
const ALPHA: f64 = 15.0;

/// The sentiment class of a text, serialised as `"POSITIVE"`, `"NEGATIVE"` or `"NEUTRAL"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    /// `compound >= 0.05`.
    Positive,
    /// `compound <= -0.05`.
    Negative,
    /// In between.
    Neutral,
}

impl Label {
    /// The label VADER's standard thresholds give a compound score.
    pub fn from_compound(compound: f64) -> Self {
        if compound >= POSITIVE_THRESHOLD {
            Label::Positive
        } else if compound <= NEGATIVE_THRESHOLD {
            Label::Negative
        } else {
            Label::Neutral
        }
    }

    /// `"POSITIVE"`, `"NEGATIVE"` or `"NEUTRAL"`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "POSITIVE",
            Label::Negative => "NEGATIVE",
            Label::Neutral => "NEUTRAL",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// VADER's scores for one text, with the label and a confidence derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    /// [`Label::from_compound`] of `compound`.
    pub label: Label,
    /// A confidence in the label, in `[0, 1]`:
    /// `|compound|` for a positive or negative label (the normalised strength of the
    /// sentiment, at least 0.05), and `neu` for a neutral one (the share of the text that
    /// carries no sentiment: 1.0 for plain factual text, lower when positive and negative
    /// words cancel out); 1.0 for a text with no words at all.
    pub score: f64,
    /// The normalised, weighted sum of the word valences, in `[-1, 1]`.
    pub compound: f64,
    /// Share of the text's sentiment mass that is positive, in `[0, 1]`.
    pub pos: f64,
    /// Share that is negative, in `[0, 1]`.
    pub neg: f64,
    /// Share that is neutral, in `[0, 1]`; `pos + neg + neu` is 1 (or all are 0 for an
    /// empty text).
    pub neu: f64,
}

impl Sentiment {
    fn from_scores(compound: f64, pos: f64, neg: f64, neu: f64) -> Self {
        let label = Label::from_compound(compound);
        let score = match label {
            Label::Positive | Label::Negative => compound.abs(),
            Label::Neutral if pos == 0.0 && neg == 0.0 && neu == 0.0 => 1.0,
            Label::Neutral => neu,
        };
        Sentiment {
            label,
            score: score.clamp(0.0, 1.0),
            compound,
            pos,
            neg,
            neu,
        }
    }
}

/// Scores `text` with VADER.
///
/// Pure and allocation-light: a few microseconds for a sentence. The embedded lexicon is
/// parsed on the first call (see [`preload`](super::preload)).
///
/// ```
/// use ferry_models::sentiment::{analyze, Label};
/// let s = analyze("VADER is not smart, handsome, nor funny.");
/// assert_eq!(s.label, Label::Negative);
/// assert!((s.compound - -0.7424).abs() < 1e-4);
/// assert!((s.score - 0.7424).abs() < 1e-4);
/// ```
pub fn analyze(text: &str) -> Sentiment {
    let words = &*WORDS;
    let text = replace_emoji(text);
    let tokens: Vec<Token<'_>> = text
        .split(is_py_space)
        .filter(|w| !w.is_empty())
        .map(|w| Token::new(strip_punc_if_word(w), words))
        .collect();
    if tokens.is_empty() {
        return Sentiment::from_scores(0.0, 0.0, 0.0, 0.0);
    }
    let upper = tokens.iter().filter(|t| t.upper).count();
    // Some, but not all, words in ALL CAPS: only then do capitals add emphasis.
    let cap_diff = upper > 0 && upper < tokens.len();

    let mut sentiments = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let is_modifier = token.booster.is_some()
            || (token.is("kind") && tokens.get(i + 1).is_some_and(|n| n.is("of")));
        sentiments.push(if is_modifier {
            0.0
        } else {
            valence(&tokens, i, cap_diff)
        });
    }
    but_check(&tokens, &mut sentiments);
    score_valence(&sentiments, &text)
}

/// One whitespace-separated word, as the rules see it.
struct Token<'t> {
    /// Python's `str.lower()` of the word.
    lower: Cow<'t, str>,
    /// The lexicon's valence of `lower`.
    valence: Option<f64>,
    /// Its booster or dampener increment.
    booster: Option<f64>,
    /// Whether it negates what follows.
    negation: bool,
    /// Python's `str.isupper()` of the word.
    upper: bool,
}

impl<'t> Token<'t> {
    fn new(word: &'t str, words: &FastMap<&'static str, Word>) -> Self {
        let lower = py_lower(word);
        let known = words.get(&*lower).copied().unwrap_or_default();
        Token {
            negation: known.negation || lower.contains("n't"),
            lower,
            valence: known.valence,
            booster: known.booster,
            upper: py_isupper(word),
        }
    }

    fn is(&self, word: &str) -> bool {
        self.lower == word
    }
}

/// `sentiment_valence`: the valence of the word at `i` in its context (0 outside the lexicon).
fn valence(w: &[Token<'_>], i: usize, cap_diff: bool) -> f64 {
    let Some(base) = w[i].valence else {
        return 0.0;
    };
    let mut v = base;
    // "no" before another lexicon word negates that word instead of counting itself.
    if w[i].is("no") && w.get(i + 1).is_some_and(|n| n.valence.is_some()) {
        v = 0.0;
    }
    if (i > 0 && w[i - 1].is("no"))
        || (i > 1 && w[i - 2].is("no"))
        || (i > 2 && w[i - 3].is("no") && (w[i - 1].is("or") || w[i - 1].is("nor")))
    {
        v = base * N_SCALAR;
    }
    if w[i].upper && cap_diff {
        v += if v > 0.0 { C_INCR } else { -C_INCR };
    }
    for start_i in 0..3 {
        if i > start_i && w[i - (start_i + 1)].valence.is_none() {
            let mut s = scalar_inc_dec(&w[i - (start_i + 1)], v, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            v += s;
            v = negation_check(v, w, start_i, i);
            if start_i == 2 {
                v = special_idioms_check(v, w, i);
            }
        }
    }
    least_check(v, w, i)
}

/// How much a preceding booster or dampener moves `valence` (away from zero for a booster).
fn scalar_inc_dec(word: &Token<'_>, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = word.booster else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if word.upper && cap_diff {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

fn negation_check(v: f64, w: &[Token<'_>], start_i: usize, i: usize) -> f64 {
    let so_or_this = |t: &Token<'_>| t.is("so") || t.is("this");
    match start_i {
        0 if w[i - 1].negation => v * N_SCALAR,
        0 => v,
        1 if w[i - 2].is("never") && so_or_this(&w[i - 1]) => v * 1.25,
        1 if w[i - 2].is("without") && w[i - 1].is("doubt") => v,
        1 if w[i - 2].negation => v * N_SCALAR,
        1 => v,
        // The reference's precedence, kept: `(never and so/this) or so/this`.
        _ if (w[i - 3].is("never") && so_or_this(&w[i - 2])) || so_or_this(&w[i - 1]) => v * 1.25,
        _ if w[i - 3].is("without") && (w[i - 2].is("doubt") || w[i - 1].is("doubt")) => v,
        _ if w[i - 3].negation => v * N_SCALAR,
        _ => v,
    }
}

/// Phrases around the word at `i` (`i >= 3`) that override its valence, and two-word
/// dampeners ("kind of") before it.
fn special_idioms_check(mut v: f64, w: &[Token<'_>], i: usize) -> f64 {
    let l = |k: usize| -> &str { &w[k].lower };
    let sequences: [&[&str]; 5] = [
        &[l(i - 1), l(i)],
        &[l(i - 2), l(i - 1), l(i)],
        &[l(i - 2), l(i - 1)],
        &[l(i - 3), l(i - 2), l(i - 1)],
        &[l(i - 3), l(i - 2)],
    ];
    if let Some(special) = sequences.iter().find_map(|s| special_case(s)) {
        v = special;
    }
    if w.len() - 1 > i {
        if let Some(special) = special_case(&[l(i), l(i + 1)]) {
            v = special;
        }
    }
    if w.len() - 1 > i + 1 {
        if let Some(special) = special_case(&[l(i), l(i + 1), l(i + 2)]) {
            v = special;
        }
    }
    // The reference also tries the three words before; no booster has three words.
    for (a, b) in [(i - 3, i - 2), (i - 2, i - 1)] {
        if let Some(b) = booster_bigram(l(a), l(b)) {
            v += b;
        }
    }
    v
}

/// "least" before a word negates it, except in "at least" and "very least".
fn least_check(v: f64, w: &[Token<'_>], i: usize) -> f64 {
    let least_before = |k: usize| w[k].valence.is_none() && w[k].is("least");
    if i > 1 && least_before(i - 1) {
        if !w[i - 2].is("at") && !w[i - 2].is("very") {
            return v * N_SCALAR;
        }
    } else if i > 0 && least_before(i - 1) {
        return v * N_SCALAR;
    }
    v
}

/// Halves what comes before the first "but" and multiplies by 1.5 what comes after.
///
/// The reference finds each value's position with `list.index` (its first equal value), so a
/// value equal to an already-scaled earlier one scales that earlier one again; kept as is.
fn but_check(w: &[Token<'_>], s: &mut [f64]) {
    let Some(bi) = w.iter().position(|t| t.is("but")) else {
        return;
    };
    for k in 0..s.len() {
        let v = s[k];
        let si = s[..k].iter().position(|&x| x == v).unwrap_or(k);
        if si < bi {
            s[si] = v * 0.5;
        } else if si > bi {
            s[si] = v * 1.5;
        }
    }
}

/// Sums, adds punctuation emphasis, normalises, and splits into pos/neg/neu shares.
fn score_valence(sentiments: &[f64], text: &str) -> Sentiment {
    let amplifier = punctuation_emphasis(text);
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += amplifier;
    } else if sum < 0.0 {
        sum -= amplifier;
    }
    let compound = (sum / (sum * sum + ALPHA).sqrt()).clamp(-1.0, 1.0);

    // +1/-1 compensate for neutral words, which count 1 each.
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0u32);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        } else if s < 0.0 {
            neg_sum += s - 1.0;
        } else {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amplifier;
    }
    let total = pos_sum + neg_sum.abs() + f64::from(neu_count);
    Sentiment::from_scores(
        compound,
        (pos_sum / total).abs(),
        (neg_sum / total).abs(),
        (f64::from(neu_count) / total).abs(),
    )
}

/// Up to four '!' add 0.292 each; two or three '?' add 0.18 each, more add 0.96.
fn punctuation_emphasis(text: &str) -> f64 {
    let (mut ep, mut qm) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'!' => ep += 1,
            b'?' => qm += 1,
            _ => {}
        }
    }
    let ep = ep.min(4) as f64 * 0.292;
    let qm = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

/// Replaces each emoji with its description, preceded by a space unless one precedes it.
fn replace_emoji(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        // Every emoji in the table is outside ASCII.
        return Cow::Borrowed(text);
    }
    let emoji = &*EMOJI;
    let mut out: Option<String> = None;
    let mut prev_space = true;
    for (at, c) in text.char_indices() {
        match (!c.is_ascii()).then(|| emoji.get(&c)).flatten() {
            Some(description) => {
                let out = out.get_or_insert_with(|| {
                    let mut s = String::with_capacity(text.len() + 64);
                    s.push_str(&text[..at]);
                    s
                });
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            }
            None => {
                if let Some(out) = out.as_mut() {
                    out.push(c);
                }
                prev_space = c == ' ';
            }
        }
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

/// Python's `str.isspace` for one char: Unicode white space plus the ASCII information
/// separators `\x1c`..=`\x1f`, which `str.split()` also splits on.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Strips leading and trailing ASCII punctuation unless two characters or fewer would remain
/// (then the word is probably an emoticon, such as ":)", and is kept whole).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    // At most 4 bytes a char: over 8 bytes is always over two chars.
    let short = stripped.len() <= 2 || (stripped.len() <= 8 && stripped.chars().count() <= 2);
    if short {
        token
    } else {
        stripped
    }
}

/// Python's `str.lower()`, borrowing when nothing changes.
fn py_lower(word: &str) -> Cow<'_, str> {
    if word.is_ascii() {
        if word.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(word.to_ascii_lowercase())
        } else {
            Cow::Borrowed(word)
        }
    } else if word.chars().all(|c| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    }) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(word.to_lowercase())
    }
}

/// Python's `str.isupper()`: some cased char, and no lowercase or titlecase one.
fn py_isupper(word: &str) -> bool {
    let mut cased = false;
    if word.is_ascii() {
        for b in word.bytes() {
            if b.is_ascii_lowercase() {
                return false;
            }
            cased |= b.is_ascii_uppercase();
        }
    } else {
        for c in word.chars() {
            if c.is_lowercase() || is_titlecase(c) {
                return false;
            }
            cased |= c.is_uppercase();
        }
    }
    cased
}

/// Unicode general category Lt (the digraphs such as "ǅ" and Greek letters with
/// prosgegrammeni), which `str.isupper()` treats as lowercase.
fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}'
        | '\u{1F88}'..='\u{1F8F}' | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_stripped_from_words_not_from_emoticons() {
        assert_eq!(strip_punc_if_word("funny."), "funny");
        assert_eq!(strip_punc_if_word("(don't)"), "don't");
        assert_eq!(strip_punc_if_word(":)"), ":)");
        // Two letters left: the reference keeps the punctuation.
        assert_eq!(strip_punc_if_word("no."), "no.");
        assert_eq!(strip_punc_if_word("¡olé!"), "¡olé");
    }

    #[test]
    fn python_case_rules() {
        assert!(py_isupper("SUX") && py_isupper("SUX!") && py_isupper("ÉTÉ"));
        assert!(!py_isupper("Sux") && !py_isupper("123") && !py_isupper(":)"));
        assert!(!py_isupper("\u{01C5}A"));
        assert_eq!(py_lower("Good"), "good");
        assert!(matches!(py_lower("good"), Cow::Borrowed(_)));
        assert_eq!(py_lower("ÉTÉ"), "été");
    }

    #[test]
    fn python_whitespace() {
        let words: Vec<&str> = "a\u{1f}b\u{a0}c\td"
            .split(is_py_space)
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(words, ["a", "b", "c", "d"]);
    }

    #[test]
    fn emoji_become_descriptions() {
        assert_eq!(replace_emoji("plain"), "plain");
        assert_eq!(replace_emoji("so 😁"), "so beaming face with smiling eyes");
        assert_eq!(
            replace_emoji("a😁😁 é"),
            "a beaming face with smiling eyes beaming face with smiling eyes é"
        );
    }

    #[test]
    fn punctuation_emphasis_caps() {
        assert_eq!(punctuation_emphasis("a!"), 0.292);
        assert_eq!(punctuation_emphasis("a!!!!!!"), 4.0 * 0.292);
        assert_eq!(punctuation_emphasis("a?"), 0.0);
        assert_eq!(punctuation_emphasis("a??"), 2.0 * 0.18);
        assert_eq!(punctuation_emphasis("a????"), 0.96);
    }

    #[test]
    fn but_check_reproduces_list_index() {
        let tokens: Vec<Token<'_>> = ["good", "but", "good", "x"]
            .iter()
            .map(|w| Token::new(w, &WORDS))
            .collect();
        // The last value equals the already-scaled third one, so the reference scales the
        // third again and leaves the fourth alone.
        let mut s = [1.9, 0.0, 1.9, 1.9 * 1.5];
        but_check(&tokens, &mut s);
        assert_eq!(s, [0.95, 0.0, 1.9 * 1.5 * 1.5, 1.9 * 1.5]);
    }

    #[test]
    fn labels_follow_thresholds() {
        assert_eq!(Label::from_compound(0.05), Label::Positive);
        assert_eq!(Label::from_compound(0.0499), Label::Neutral);
        assert_eq!(Label::from_compound(-0.05), Label::Negative);
        assert_eq!(Label::from_compound(-0.0499), Label::Neutral);
    }
}
