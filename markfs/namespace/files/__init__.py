"""File sources (local folders, S3, SFTP) as the mount shows them: the `/sources` provider,
how its files are stored and listed, their xattrs, the source set, each source's health
and the local watcher. Imported by the namespace core and `fs`; imports the namespace
core, the catalog, the caches and the backends."""
