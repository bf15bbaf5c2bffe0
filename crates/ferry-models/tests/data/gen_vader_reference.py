"""Regenerates vader_reference.jsonl: texts scored by the reference VADER implementation.

    pip download vaderSentiment==3.3.2 --no-deps -d /tmp/vader
    cd /tmp/vader && python3 -m zipfile -e vaderSentiment-3.3.2-py2.py3-none-any.whl x
    PYTHONPATH=/tmp/vader/x python3 gen_vader_reference.py > vader_reference.jsonl

The module's `round` is replaced by the identity so the scores are recorded unrounded and the
Rust port can be held to 1e-9. The texts are the package's own demo sentences plus generated
ones that exercise every rule (boosters, negations, "no", "least", "but", ALL CAPS, idioms,
punctuation, emoticons, emoji); the seed makes the file reproducible.
"""
import json
import random

import vaderSentiment.vaderSentiment as vs

vs.round = lambda x, n=None: x  # record unrounded scores

FIXED = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
    "Without a doubt, an excellent idea.",
    "I love this product! It is amazing.",
    "This is terrible and disappointing.",
    "It is okay, nothing special.",
    "no good",
    "no no no",
    "No, I am not happy.",
    "there is no love or kindness here",
    "this is no great or good thing",
    "it was the bomb",
    "yeah right, that was great",
    "the kiss of death for this band",
    "a meal to die for",
    "the bus stop was nice",
    "his beating heart was strong",
    "it is sort of good",
    "it is just enough good",
    "I kind of like it",
    "good but good",
    "good but good great",
    "",
    "   ",
    "!!!",
    "???",
    "good???",
    "good????",
    "bad!!!!!!",
    "GOOD",
    "GOOD bad",
    "VERY good",
    "very GOOD",
    "VERY bad day",
    "It's ON! 🔛 really",
    "héllo wörld, ÉTÉ GOOD été",
    "ok.",
    "no.",
    "hate,hate,hate",
    "I don't love it",
    "I never so loved it",
    "it was never this good",
    "never so very good",
    "without doubt good",
    "at least good",
    "very least good",
    "the least good",
    "least good",
]

lexicon_words = sorted(vs.SentimentIntensityAnalyzer().lexicon)
emoji_chars = sorted(
    e for e in vs.SentimentIntensityAnalyzer().emojis if len(e) == 1
)
BOOSTERS = sorted(vs.BOOSTER_DICT)
NEGATE = vs.NEGATE
FILLER = ["the", "a", "movie", "book", "was", "is", "it", "this", "so", "that", "and",
          "or", "nor", "but", "no", "least", "at", "very", "kind", "of", "sort", "never",
          "without", "doubt", "i", "you", "we", "really", "today", "service", "food",
          "just", "enough", "bus", "stop", "yeah", "right", "kiss", "death", "to", "die",
          "for", "beating", "heart", "bad", "ass", "shit", "bomb"]
PUNCT = ["", "", "", ".", ",", "!", "!!", "?", "??", "???", "?!", "...", ":", ";", ")"]


def word(rng):
    r = rng.random()
    if r < 0.35:
        w = rng.choice(lexicon_words)
    elif r < 0.5:
        w = rng.choice(BOOSTERS)
    elif r < 0.6:
        w = rng.choice(NEGATE)
    elif r < 0.65:
        w = rng.choice(emoji_chars)
    else:
        w = rng.choice(FILLER)
    c = rng.random()
    if c < 0.12:
        w = w.upper()
    elif c < 0.2:
        w = w.capitalize()
    return w + (rng.choice(PUNCT) if rng.random() < 0.3 else "")


def sentence(rng):
    n = rng.randint(1, 14)
    sep = lambda: rng.choice([" ", " ", " ", " ", "  ", "\t", ""])
    return "".join(word(rng) + sep() for _ in range(n)).replace("\t", " ")


def main():
    rng = random.Random(20141)
    texts = FIXED + [sentence(rng) for _ in range(1500)]
    analyzer = vs.SentimentIntensityAnalyzer()
    for t in texts:
        s = analyzer.polarity_scores(t)
        print(json.dumps({"text": t, "compound": s["compound"], "pos": s["pos"],
                          "neg": s["neg"], "neu": s["neu"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
