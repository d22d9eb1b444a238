"""The shared knowledge base: articles, renderings, search and answers. No Flask."""
