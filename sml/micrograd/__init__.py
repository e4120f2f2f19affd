"""micrograd: backpropagation from scratch, on single numbers, before tensors hide it.

Read ``engine.py`` (the ``Value`` and its operations), then ``nn.py`` (neurons, layers, an
MLP), then ``moons.py`` (a whole training loop). ``python -m stages.micrograd`` trains the
MLP on two half-moons and draws its decision boundary and a computation graph.

The chain rule on one neuron
----------------------------
A neuron with two inputs computes ``o = tanh(x1*w1 + x2*w2 + b)``. Forward, with
x1 = 2, w1 = -1.5, x2 = 1, w2 = 0.5, b = 1:

    n = x1*w1 + x2*w2 + b = -3 + 0.5 + 1 = -1.5
    o = tanh(n)           = -0.9051

Backward asks, for every input v: how much does o move when v moves, do/dv? Start at the
output with do/do = 1 and go back one operation at a time, multiplying by each local
derivative (the chain rule):

    do/dn  = 1 - tanh(n)^2        = 1 - 0.8193 = 0.1807   (tanh's local derivative)
    do/db  = do/dn * dn/db        = 0.1807 * 1            (a sum passes gradients through)
    do/dw1 = do/dn * dn/dw1       = 0.1807 * x1  =  0.3614 (a product: the *other* factor)
    do/dx1 = do/dn * dn/dx1       = 0.1807 * w1  = -0.2711
    do/dw2 = 0.1807 * x2 = 0.1807;   do/dx2 = 0.1807 * w2 = 0.0904

So w1 is the weight to change first: a small step +h moves o by about 0.36 h. Training is
just this: for a loss instead of o, step every weight against its gradient.

The engine does exactly these steps, each ``_backward`` multiplying by one local
derivative; check it yourself:

>>> x1, w1, x2, w2, b = Value(2.0), Value(-1.5), Value(1.0), Value(0.5), Value(1.0)
>>> o = (x1 * w1 + x2 * w2 + b).tanh()
>>> o.backward()
>>> [round(v.grad, 4) for v in (w1, x1, w2, x2, b)]
[0.3614, -0.2711, 0.1807, 0.0904, 0.1807]
"""

from sml.micrograd.engine import Value
from sml.micrograd.nn import MLP, Layer, Module, Neuron

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP"]
