//! Sample texts for benchmarks and tests, generated (no data files): `ferry-bench service`
//! and the `sentiment` criterion bench score the same kind of corpus.

/// `n` deterministic, varied review-like sentences (the same `seed`, the same texts), for
/// benchmarks and tests: subjects, verbs, boosters, negations,
/// positive, negative and neutral words, contrast clauses, capitals, punctuation, emoticons
/// and emoji, so the model does its full work (negation, boosters, "but", caps).
pub fn sample_texts(n: usize, seed: u64) -> Vec<String> {
    const SUBJECTS: &[&str] = &[
        "The pasta",
        "This headset",
        "Our room",
        "The support line",
        "The film",
        "My tablet",
        "The courier",
        "The checkout page",
        "The show",
        "The ending",
        "This novel",
        "The waiter",
        "The latest release",
        "Their help desk",
        "The train ride",
        "The battery",
        "The camera",
        "The hotel pool",
        "The onboarding",
        "The price",
    ];
    const VERBS: &[&str] = &[
        "was",
        "is",
        "seems",
        "looked",
        "felt",
        "has been",
        "turned out",
        "sounds",
    ];
    const BOOSTERS: &[&str] = &[
        "",
        "",
        "",
        "very ",
        "really ",
        "extremely ",
        "kind of ",
        "slightly ",
        "so ",
        "incredibly ",
        "somewhat ",
        "quite ",
    ];
    const NEGATIONS: &[&str] = &["", "", "", "", "", "not ", "never ", "hardly ", "isn't "];
    const WORDS: &[&str] = &[
        "good",
        "great",
        "amazing",
        "excellent",
        "wonderful",
        "fine",
        "okay",
        "bad",
        "terrible",
        "awful",
        "disappointing",
        "boring",
        "slow",
        "fast",
        "cheap",
        "expensive",
        "lovely",
        "ugly",
        "helpful",
        "rude",
        "friendly",
        "broken",
        "perfect",
        "mediocre",
        "grey",
        "late",
        "on time",
        "useless",
        "brilliant",
        "confusing",
        "fantastic",
        "horrible",
        "pleasant",
        "noisy",
        "clean",
        "dirty",
        "reliable",
        "annoying",
    ];
    const TAILS: &[&str] = &[
        ".", ".", ".", "!", "!!", "!!!", "?", "...", " :)", " :(", " lol", " 😀", " 😡", " :D",
    ];
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let mut word = rng.pick(WORDS).to_owned();
            if rng.below(9) == 0 {
                word = word.to_uppercase();
            }
            let mut s = format!(
                "{} {} {}{}{}",
                rng.pick(SUBJECTS),
                rng.pick(VERBS),
                rng.pick(NEGATIONS),
                rng.pick(BOOSTERS),
                word
            );
            match rng.below(6) {
                0 | 1 => s.push_str(&format!(
                    ", but {} {} {}{}",
                    rng.pick(SUBJECTS).to_lowercase(),
                    rng.pick(VERBS),
                    rng.pick(BOOSTERS),
                    rng.pick(WORDS)
                )),
                2 => s.push_str(&format!(" and {}{}", rng.pick(BOOSTERS), rng.pick(WORDS))),
                3 => s.push_str(&format!(
                    ", although I expected {} {}",
                    rng.pick(BOOSTERS),
                    rng.pick(WORDS)
                )),
                _ => {}
            }
            s.push_str(rng.pick(TAILS));
            s
        })
        .collect()
}

/// SplitMix64: reproducible texts without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }

    fn pick(&mut self, list: &[&'static str]) -> &'static str {
        list.get(self.below(list.len())).copied().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_deterministic_and_varied() {
        let a = sample_texts(2000, 1);
        assert_eq!(a, sample_texts(2000, 1));
        let distinct: std::collections::HashSet<&String> = a.iter().collect();
        assert!(distinct.len() > 1900, "{} distinct of 2000", distinct.len());
        // `ferry-bench service`'s corpus (200 jobs x 100 texts): the result cache must not
        // be what makes it fast.
        let corpus = sample_texts(20_000, 0x5eed_0001);
        let distinct: std::collections::HashSet<&String> = corpus.iter().collect();
        assert!(
            distinct.len() > 19_000,
            "{} distinct of 20,000",
            distinct.len()
        );
        let labels: std::collections::HashSet<String> = a
            .iter()
            .map(|t| format!("{:?}", crate::sentiment::analyze(t).label))
            .collect();
        assert_eq!(
            labels.len(),
            3,
            "positive, negative and neutral texts: {labels:?}"
        );
    }
}
