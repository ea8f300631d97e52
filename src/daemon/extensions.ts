/**
 * API extensions Lodge implements, advertised in GET /1.0. Clients pick code paths from this
 * list, so an entry is added only together with the behaviour it names.
 */
export const API_EXTENSIONS: readonly string[] = [
  // ETag on GET, If-Match on PUT/PATCH (server config).
  "etag",
  // /1.0/events: lifecycle events, event location and project fields.
  "event_lifecycle",
  "event_location",
  "event_project",
  // /1.0/warnings.
  "warnings",
  // /1.0/images: `type` on images and aliases, editable expires_at, aliases in POST /1.0/images.
  "image_types",
  "images_expiry",
  "image_create_aliases",
  // POST /1.0/images/<fp>/refresh; source.project when copying from another LXD-API server.
  "image_force_refresh",
  "image_source_project",
  // /1.0/instances for containers: lifecycle, exec (websockets, recording, user/group/cwd,
  // signals), logs.
  "instances",
  // Virtual machines (type "virtual-machine") through the same routes, where QEMU is installed.
  "virtual-machines",
  // recursion=2 on /1.0/instances: state, snapshots and backups inline (one request for `lxc list`).
  "container_full",
  // GET /1.0/instances/<name>?recursion=1: the same full object for one instance (`lxc info`).
  "instance_get_full",
  // filter= on list endpoints (instances, images).
  "api_filtering",
  "container_exec_recording",
  "container_exec_user_group_cwd",
  "container_exec_signal_handling",
  // image.* keys on instances: the properties of the image they came from.
  "container_image_properties",
  // environment.driver lists only the instance drivers that work on this host.
  "server_instance_driver_operational",
  // Operations carry a description.
  "operation_description",
  // security.idmap.isolated/size/base; volatile.idmap.current (sys/idmap.ts, set at start).
  "id_map",
  "id_map_base",
  "id_map_current",
  // security.protection.delete; boot.stop.priority and boot.host_shutdown_timeout (host shutdown).
  "container_protection_delete",
  "container_stop_priority",
  "container_host_shutdown_timeout",
  // /1.0/instances/<name>/files: directories, symlinks, append, delete.
  "directory_manipulation",
  "file_symlinks",
  "file_append",
  "file_delete",
  // GET of a symlink answers its target (x-lxd-type: symlink).
  "file_get_symlink",
  // disk devices: propagation and shift.
  "container_mount_propagation",
  "container_disk_shift",
  // /1.0/instances/<name>/console: attach (websocket operation) and the console log.
  "console",
  // proxy devices (forwarders, not NAT): tcp, unix and udp, port ranges, unix socket uid/gid/mode,
  // security.uid/gid, proxy_protocol.
  "proxy",
  "proxy_unix",
  "proxy_udp",
  "proxy_tcp_udp_multi_port_handling",
  "proxy_unix_dac_properties",
  "unix_priv_drop",
  "proxy_haproxy_protocol",
  // /1.0/profiles: used_by on profiles, with ?project= on entries outside the default project.
  "profile_usedby",
  "usedby_consistency",
  // /1.0/networks: managed bridges (dnsmasq, nftables), host interfaces listed unmanaged;
  // leases, state, forwards.
  "network",
  "network_leases",
  "network_state",
  "network_forward",
  // NICs name a managed network (`network=`) rather than its bridge; `lxc launch --network` uses it.
  "instance_nic_network",
  // /1.0/storage-pools (dir, btrfs) with resources; custom volumes: create, copy, rename,
  // move between pools, snapshots, attached as disks (pool=, source=).
  "storage",
  "storage_api_volume_rename",
  "storage_api_volume_snapshots",
  "storage_api_local_volume_handling",
  // GET …/volumes/<type>/<volume>/state: a volume's usage (`lxc storage volume info`), where
  // its driver can tell (btrfs qgroups, dir on project quotas).
  "storage_volume_state",
  // GET /1.0/resources (sys/resources/): CPU sockets, cores and threads with NUMA nodes, dies,
  // caches, frequencies and isolation; memory and huge pages per NUMA node; GPUs (DRM, SR-IOV,
  // mdev, USB); NICs and ports; disks (SATA details, by-id, PCI/USB address); USB and PCI
  // devices (IOMMU group, VPD); DMI system data. `lxc info --resources` needs resources_v2,
  // `lxc storage info` needs resources. Not resources_network_firmware: the firmware version
  // comes only from an ethtool ioctl, which Lodge does not make.
  "resources",
  "resources_cpu_socket",
  "resources_gpu",
  "resources_numa",
  "resources_v2",
  "resources_infiniband",
  "resources_disk_sata",
  "resources_disk_id",
  "resources_usb_pci",
  "resources_cpu_threads_numa",
  "resources_cpu_core_die",
  "resources_system",
  "resources_cpu_isolated",
  "resources_gpu_mdev",
  "resources_pci_iommu",
  "resources_network_usb",
  "resources_disk_address",
  "resources_gpu_usb",
  "resources_pci_vpd",
  // /1.0/instances/<n>/snapshots: expires_at on snapshots (snapshots.expiry) and on creation.
  "snapshot_expiry",
  "snapshot_expiry_creation",
  // snapshots.schedule (cron or @hourly/@daily/… aliases), snapshots.schedule.stopped,
  // snapshots.pattern: a minute timer takes due snapshots and prunes expired ones.
  "snapshot_scheduling",
  "snapshot_schedule_aliases",
  // POST /1.0/instances with source type "copy": snapshots carried (instance_only leaves them),
  // and refresh of an existing copy.
  "container_only_migration",
  "container_incremental_copy",
  // POST /1.0/instances/<n> with "pool": a stopped instance moves to another storage pool.
  "instance_pool_move",
  // /1.0/instances/<name>/backups: create (name, expires_at, instance_only, optimized_storage
  // on a driver that has it: btrfs send streams), rename, delete, export; POST /1.0/instances
  // with a backup tarball (lxc import) in LXD's format, snapshots restored with it; compression_algorithm on create (the server key
  // backups.compression_algorithm, "backup_compression", is not there yet); X-LXD-pool and
  // X-LXD-name on import.
  "container_backup",
  "backup_compression_algorithm",
  "container_backup_override_pool",
  "backup_override_name",
];
