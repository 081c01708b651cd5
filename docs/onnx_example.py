# Property-test an ONNX Runtime export of DistilBERT against minidistil.
#   python tools/checks/export_onnx.py CHECKPOINT model.onnx      (torch + transformers, once)
#   python docs/onnx_example.py CHECKPOINT model.onnx      (onnxruntime + hypothesis)
import sys

import onnxruntime as ort
from hypothesis import given, settings

from minidistil import DistilBertModel
from minidistil.testing import checks, strategies

checkpoint, onnx_file = sys.argv[1], sys.argv[2]
reference = DistilBertModel.from_pretrained(checkpoint, backend="numpy")
session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])


def onnx_model(input_ids, attention_mask):
    return session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]


@settings(max_examples=50, deadline=None)
@given(strategies.token_batches(reference.config))
def test_onnx_export(batch):
    checks.assert_matches_reference(onnx_model, *batch, reference, atol=1e-4)
    checks.assert_padding_invariant(onnx_model, *batch)
    checks.assert_batch_invariant(onnx_model, *batch)
    checks.assert_deterministic(onnx_model, *batch)


test_onnx_export()
print(f"{onnx_file} agrees with minidistil on 50 random batches")
