//! stub: filled in by the Kubernetes work (issue 7).
