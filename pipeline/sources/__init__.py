"""Places data comes from: one module per source (MNIST, Kaggle, Hugging Face, URL lists, crawler)."""
