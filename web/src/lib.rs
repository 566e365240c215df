//! headroom's site (Leptos CSR). Filled in by the site issue.
