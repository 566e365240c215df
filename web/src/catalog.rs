//! The one place the site calls into `headroom-core`'s catalogs and estimate.
