"""Tokenization: DistilBERT's WordPiece tokenizer, written by hand to match the reference fast tokenizer exactly.

    text ──► normalizer      clean, CJK spacing, accents, lowercase, with an alignment to the original characters
         ──► pre-tokenizer   words: split on whitespace and punctuation                       (normalizer.py)
         ──► wordpiece       each word into vocabulary pieces, cached                          (wordpiece.py)
         ──► encoding        ids with character offsets; truncation with stride and overflow windows,
                             [CLS] A [SEP] (B [SEP]), padding                       (engine.py, encoding.py)
         ──► BatchEncoding   the model inputs with the reference's lookups            (batch_encoding.py)

tokenizer.py is the reference's interface over it (DistilBertTokenizer, DistilBertTokenizerFast: one
engine under both names); files.py reads and writes vocab.txt, tokenizer.json, tokenizer_config.json and
special_tokens_map.json; decoder.py turns tokens back into text; arguments.py checks a call's arguments.
"""

from .batch_encoding import BatchEncoding
from .encoding import Encoding
from .files import load_vocab
from .normalizer import BertNormalizer
from .tokenizer import DistilBertTokenizer, DistilBertTokenizerFast
from .wordpiece import WordPiece

__all__ = [
    "BatchEncoding",
    "BertNormalizer",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
    "Encoding",
    "WordPiece",
    "load_vocab",
]
