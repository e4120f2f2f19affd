"""A learner's correct head split and merge, written from the stub's contract alone (for the grader's tests)."""


def split_heads(x, n_head):
    B, T, C = x.shape
    x = x.view(B, T, n_head, C // n_head)  # each position's channels cut into heads
    return x.transpose(1, 2)  # (B, nh, T, hs)


def merge_heads(y):
    B, nh, T, hs = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, nh * hs)
