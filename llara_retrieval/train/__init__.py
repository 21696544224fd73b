"""Training both LLaRA stages: ``pretrain`` (EBAE + EBAR adaptation) and ``finetune`` (contrastive)."""
