"""Pure routing core: no Flask, ORM or Redis."""
