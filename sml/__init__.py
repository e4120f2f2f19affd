"""SML: a small GPT, from scratch. This top level is the textbook, read in this order:

micrograd/ (autograd on scalars, a tiny MLP); tokenizer/ (byte-level BPE); model.py (the GPT)
and parts.py (the functions it calls, one record: a learner's take their place); batches.py,
loss.py, optim.py, train.py (the training step and loop); kvcache.py, generate.py (sampling);
evaluate.py (the units a model is measured in); chat.py (the chat template and what fine-tuning
learns of it). README.md's "Reading order" gives each size.

Beneath it, what a learner can skip: config/, data/, run/, learn/ (grading), hf/.
"""
