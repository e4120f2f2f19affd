"""SML: a small GPT, from scratch. This top level is the textbook; read it in this order.

micrograd/ (engine, nn, moons): autograd on scalars, then a tiny MLP;
tokenizer/ (pretokenize, train, tokenizer): byte-level BPE;
model.py: the GPT; parts.py: the functions it calls, one record (a learner's take their place);
batches.py, loss.py, optim.py, train.py: the training step and loop;
kvcache.py, generate.py: sampling; evaluate.py: the units a model is measured in.

Beneath it, what a learner can skip: config/ (params.yaml, typed and validated), data/ (from
sources to token files), run/ (the run around the loop, checkpoints, devices, evaluation and
plots), learn/ (grading the learner's parts), hf/ (Hugging Face in and out). README.md's
"Reading order" gives each file's size.
"""
