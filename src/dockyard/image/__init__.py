"""image layer (see DESIGN.md): content-addressed blobs, layers, references.

reference.py     image names: parse_reference, Reference (Docker grammar)
changes.py       apply_changes: Dockerfile instructions for import/commit -c
store.py         ImageStore: blobs, unpacked layers (configs and GC in the next two)
image_configs.py ImageConfigs: the store's image configs, docker import
layer_retention.py LayerRetention: the store's leases, image and layer deletion
tar_split.py     TarSplit: a loaded layer's tar kept as its non-data bytes
tarsafe.py       unpack_layer: hostile-tar-safe unpacking, overlay whiteouts
tar_reader.py    TarReader: a tar stream read forward, fast, hashed as it passes
file_pool.py     FilePool: a layer's small files written on worker threads
tar_assist.py    TarAssist: a new layer's plain entries made by a GNU tar child it checks
early_writeback.py EarlyWriteback: a layer written back to disk while it unpacks
layer_tar.py     write_layer_tar / write_merged_tar: commit and export tars
layer_copy.py    LayerCopy: commit's upper dir made a layer in the walk that hashes its tar
tar_feed.py      TarFeed: that tar encoded and hashed on a thread of its own
tar_header.py    header: tarfile's PAX_FORMAT header bytes, cheaper
copied_layers.py copy_tree / rebuild_tar: such layers, their tar rebuilt when needed
layered_read.py  read_file: a file through stacked overlay layer dirs
archive.py       save_images / load_images: docker save / docker load
streamed_layers.py StreamedLayers: load's layers unpacked as the archive arrives
registry.py      Registry: the Distribution v2 client (manifests, blobs, auth)
registry_auth.py AuthConfig, InsecureRegistries, Www-Authenticate challenges
users.py         resolve_user / resolve_groups: --user, --group-add
digest.py        sha256 digests and OCI chain ids
digesting.py     LayerDigest: a layer stream hashed and copied as it is unpacked
atomic.py        crash-safe writes and temporaries
"""
