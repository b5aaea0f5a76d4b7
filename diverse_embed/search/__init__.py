"""Finding sounds: an index folder of embeddings (store, index), its FAISS types (index_types,
backends), near-duplicate groups, Parquet tables for other engines, the listening page, and the
commands that drive them (commands)."""
