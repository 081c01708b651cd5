"""Model outputs with the reference's field names.

A ModelOutput is an ordered dict that also allows attribute access, like the
reference's: `out.logits` and `out["logits"]` are the same NumPy array; fields
left as None are absent from the dict (so `out["loss"]` is a KeyError when no
labels were given) but read as None through attributes; `out[0]` and
`out.to_tuple()` index the fields that are set, in declaration order.
hidden_states and attentions are tuples of arrays.
"""

from collections import OrderedDict


class ModelOutput(OrderedDict):
    """Base output. Subclasses list their fields in `_fields`; the base class takes any keyword."""

    _fields = ()

    def __init__(self, *args, **kwargs):
        if args:
            if len(args) > 1:
                raise TypeError(f"{type(self).__name__} takes at most one positional argument (a mapping)")
            kwargs = {**dict(args[0]), **kwargs}
        fields = type(self)._fields
        if fields:
            unknown = [k for k in kwargs if k not in fields]
            if unknown:
                raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(unknown)}; fields: {', '.join(fields)}")
            order = fields
        else:
            order = list(kwargs)
        super().__init__((k, kwargs[k]) for k in order if kwargs.get(k) is not None)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self:
            return self[name]
        if name in type(self)._fields:
            return None
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name, value):
        if name.startswith("_"):
            super().__setattr__(name, value)
        elif value is None:
            self.pop(name, None)
        else:
            self[name] = value

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def __reduce__(self):
        return (type(self), (dict(self),))

    def to_tuple(self):
        """The fields that are set, in order."""
        return tuple(self.values())

    def __repr__(self):
        parts = []
        for key, value in self.items():
            if isinstance(value, tuple):
                desc = f"tuple of {len(value)}"
            elif hasattr(value, "shape"):
                desc = f"array{tuple(value.shape)}" if getattr(value, "ndim", 1) else repr(value)
            else:
                desc = repr(value)
            parts.append(f"{key}={desc}")
        return f"{type(self).__name__}({', '.join(parts)})"


class BaseModelOutput(ModelOutput):
    _fields = ("last_hidden_state", "hidden_states", "attentions")


class MaskedLMOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class SequenceClassifierOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class MultipleChoiceModelOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class TokenClassifierOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    _fields = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")
