//! Object sources: fetch an archive or file from https, S3, GCS or Azure Blob into a context.
