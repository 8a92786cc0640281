"""Fine-tuning Inkling's completion model: data preparation, LoRA/QLoRA SFT, DPO."""
