"""From sources to token files: what the download and encode stages run.

Not needed to understand a GPT: the corpus arrives here (``download``, ``sources``, ``corpus``),
and leaves as memory-mapped token files (``encode``, ``tokens``). ``meter`` prints their
progress in MB/s.
"""
