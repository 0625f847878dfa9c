"""Files of remote sources (S3, SFTP): staged writes and their uploader, reads through the
content cache, uploads in pieces and the digests taken on the way. Imported by
`namespace.files` and the namespace core; imports the catalog, the caches and the
backends."""
