"""The models folder: pulling GGUF files by reference (Hugging Face Hub or URL), listing and removing them."""
