"""The engine: one hop (`hop` value types, `train` loop, `distill` losses, `augment` views
on the device), the hop store (`store`, `locks`), paths (`path`) and chains of hops
(`chain`, `own_teacher`). Pure torch, no Ray: a trial calls it inside a worker, run-path
calls it directly."""
