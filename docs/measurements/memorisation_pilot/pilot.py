"""Exploration pilot (kept verbatim as the provenance of pilots.json; not part of the toolkit): how fast does
the shipped base (or one with function-preservingly widened MLPs, --inner) memorise N Fashion-MNIST training
images under a constant / linear / cosine learning rate? A bare bf16-autocast loop, one CPU thread, batch 8.
The toolkit's own loop is hyperfit_core.train; setting C in docs/results.md ran through it.

    python docs/measurements/memorisation_pilot/pilot.py --sched lin --lr 3e-3 --epochs 60 --n 500 --data-root data
"""
import argparse, json, math, time, torch, torch.nn.functional as F
from hyperfit_vision.model import load_imagegpt
from hyperfit_vision.data import load_torchvision_dataset
from hyperfit_vision.training import image_sequences
p = argparse.ArgumentParser()
p.add_argument("--inner", type=int, default=0); p.add_argument("--extra-layers", type=int, default=0)
p.add_argument("--lr", type=float, default=1e-3); p.add_argument("--sched", default="const")
p.add_argument("--epochs", type=int, default=5); p.add_argument("--n", type=int, default=2000)
p.add_argument("--fp32", action="store_true"); p.add_argument("--data-root", default="data"); p.add_argument("--base", default="assets/fashion-base"); p.add_argument("--tag", default="x"); p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(1); torch.manual_seed(a.seed)
im, _ = load_imagegpt(a.base); m = im.model
if a.inner:
    for blk in m.transformer.h:
        fc, pr = blk.mlp.c_fc, blk.mlp.c_proj; old = fc.weight.shape[1]
        w = torch.randn(fc.weight.shape[0], a.inner) * 0.02; w[:, :old] = fc.weight.data
        b = torch.zeros(a.inner); b[:old] = fc.bias.data
        wp = torch.zeros(a.inner, pr.weight.shape[1]); wp[:old] = pr.weight.data
        fc.weight = torch.nn.Parameter(w); fc.bias = torch.nn.Parameter(b); fc.nf = a.inner
        pr.weight = torch.nn.Parameter(wp)
print("params", sum(q.numel() for q in m.parameters()))
train = load_torchvision_dataset("fashion-mnist", a.data_root, "train")
idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed))[:a.n]
ids = image_sequences(train.subset(idx), im).ids
test = image_sequences(load_torchvision_dataset("fashion-mnist", a.data_root, "test").first(300), im).ids
def evalloss(x):
    m.eval(); tot = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        for i in range(0, len(x), 100):
            lg = m(input_ids=x[i:i+100, :-1]).logits.float()
            tot += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), x[i:i+100, 1:].reshape(-1), reduction="sum").item()
    m.train(); return tot / (len(x) * (x.shape[1]-1))
opt = torch.optim.Adam(m.parameters(), lr=a.lr)
steps = a.epochs * (len(ids) // 8); warm = min(200, steps // 20); s = 0
print(json.dumps({"tag": a.tag, "epoch": 0, "test": evalloss(test)}), flush=True)
g = torch.Generator().manual_seed(a.seed + 1)
for ep in range(1, a.epochs + 1):
    t = time.time(); order = torch.randperm(len(ids), generator=g); tot = 0
    for i in range(0, len(ids) - 7, 8):
        if a.sched == "cos":
            lr = a.lr * min(1, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / steps))
        elif a.sched == "lin":
            lr = a.lr * min(1, (s + 1) / warm) * (1 - s / steps)
        else: lr = a.lr
        for gr in opt.param_groups: gr["lr"] = lr
        x = ids[order[i:i+8]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
            lg = m(input_ids=x[:, :-1]).logits.float()
        loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward(); opt.step(); opt.zero_grad(); tot += loss.item(); s += 1
    rec = {"tag": a.tag, "epoch": ep, "mean": tot / (len(ids) // 8), "sec": round(time.time() - t)}
    if ep == a.epochs or ep % 5 == 0: rec.update(train_eval=evalloss(ids), test=evalloss(test))
    print(json.dumps(rec), flush=True)
