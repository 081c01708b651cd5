"""From WordPiece tokens back to text, as the reference's WordPiece decoder and its clean-up of spaces.

    >>> join_wordpieces(["the", "play", "##ing", "field", "."])
    'the playing field.'
    >>> clean_up_tokenization("it ' s a test , isn ' t it ?")
    "it's a test, isn't it?"
"""

from __future__ import annotations


def clean_up_tokenization(text):
    """The reference's clean-up of spaces before punctuation and in English contractions."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def _decoder_cleanup(token):
    """The WordPiece decoder's own clean-up, applied to each token (with its leading space): the same
    replacements plus " do not" -> " don't" (no replacement can create or break another's match)."""
    return clean_up_tokenization(token).replace(" do not", " don't")


def join_wordpieces(tokens):
    """Join WordPiece tokens as the reference's WordPiece decoder does: a `##` continuation sticks to
    the token before it, any other token follows a space."""
    out = []
    for i, tok in enumerate(tokens):
        if i:
            tok = tok[2:] if tok.startswith("##") else " " + tok
        out.append(_decoder_cleanup(tok))
    return "".join(out)
