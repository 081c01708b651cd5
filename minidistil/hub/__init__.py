"""Downloads from a Hugging Face hub into the standard cache, treating the server as untrusted.

- `names`: every name a server or a file sends (file, shard, commit, revision, ETag, module path) is
  checked before it becomes a path;
- `transport`: HTTP(S) only, redirects followed by hand, the token kept to the hub's origin, deadlines;
- `integrity`: a blob is accepted only when its size and hash are the ones the server announced;
- `cache`: the cache layout, atomic links and refs, one file lock per blob;
- `download`: the HEAD/GET protocol of the hub and the files a model needs;
- `settings`: the environment variables huggingface_hub reads.

SECURITY.md at the repository root says what a hostile server or file can and cannot do.
"""
