//! Pipeline (placeholder during build)
