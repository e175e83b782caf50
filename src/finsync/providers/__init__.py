"""Provider adapters (one package each) and the registry that lists them."""
