//! Everything a run leaves behind for people: the SQLite results store with its provenance,
//! comparison tables rendered from it, and charts.
