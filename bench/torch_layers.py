#!/usr/bin/python3
"""torch_layers.py: PyTorch's times for the report's "Fast Layers" shapes.

Run by bench_layers (popen) so the two tables come from one run; it can also
run alone. float64 on the CPU, like the report and like bench_layers (nn_f64).
Prints one line per row, `torch layer=<name> s=<seconds>`, the minimum over
--reps timed calls after warm-up. Not a correctness check: the data here are
PyTorch's own random tensors, not the C side's.

conv backward is timed as autograd computes it, torch.autograd.grad of the
output w.r.t. (x, w, b) on a retained graph, so the forward is not in the
time; pool backward likewise (max_pool2d's backward uses the argmax indices
the forward saved).
"""
import argparse
import sys
import time


def best_of(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best = min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()

    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # ImportError, or a broken install
        print("torch: unavailable (%s)" % (str(e).splitlines() or ["import failed"])[0])
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dt = torch.float64
    print("torch: %s, %d threads, float64" % (torch.__version__, torch.get_num_threads()))

    x = torch.randn(10, 3, 31, 31, dtype=dt, requires_grad=True)
    w = torch.randn(25, 3, 3, 3, dtype=dt, requires_grad=True)
    b = torch.randn(25, dtype=dt, requires_grad=True)
    dout = torch.randn(10, 25, 16, 16, dtype=dt)

    with torch.no_grad():
        t = best_of(lambda: F.conv2d(x, w, b, stride=2, padding=1), args.reps, args.warmup)
    print("torch layer=conv_forward s=%.9f" % t)

    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert tuple(y.shape) == (10, 25, 16, 16)
    t = best_of(lambda: torch.autograd.grad(y, (x, w, b), dout, retain_graph=True),
                args.reps, args.warmup)
    print("torch layer=conv_backward s=%.9f" % t)

    xp = torch.randn(40, 3, 32, 32, dtype=dt, requires_grad=True)
    with torch.no_grad():
        t = best_of(lambda: F.max_pool2d(xp, 2, stride=2), args.reps, args.warmup)
    print("torch layer=pool_forward s=%.9f" % t)

    yp = F.max_pool2d(xp, 2, stride=2)
    assert tuple(yp.shape) == (40, 3, 16, 16)
    doutp = torch.randn_like(yp)
    t = best_of(lambda: torch.autograd.grad(yp, (xp,), doutp, retain_graph=True),
                args.reps, args.warmup)
    print("torch layer=pool_backward s=%.9f" % t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
