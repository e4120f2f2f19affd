"""A learner's correct BPE, written from the stub's contract alone (for the grader's tests)."""


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(chunk_counts, n_merges):
    words = [(list(chunk.encode("utf-8")), count) for chunk, count in chunk_counts.items()]
    merges = []
    for i in range(n_merges):
        counts = {}
        for ids, count in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + count
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        words = [(merge(ids, best, 256 + i), count) for ids, count in words]
    return merges


def encode_chunk(chunk, merges):
    ids = list(chunk)
    for i, pair in enumerate(merges):  # in the order learned, each once
        ids = merge(ids, pair, 256 + i)
    return ids


def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids)
