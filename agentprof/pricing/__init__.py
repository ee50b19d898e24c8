"""Dollar cost of model calls: genai-prices, model-name normalisation and user prices."""
