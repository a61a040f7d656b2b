# The install-time logic shared by the .deb maintainer scripts and the .rpm scriptlets; build.sh
# prepends bin/_require_node.sh and appends one dispatch line per script. POSIX sh.
# Every path, the ekm account and the boot links take dpkg's DPKG_ROOT prefix (set by
# `dpkg --root` with --force-script-chrootless; empty on a normal install): nothing outside the
# target root is touched, which is also how the tests install the package into a scratch root.

EKM_VERSION='@VERSION@'
EKM_HOME=/var/lib/ekm
for f in "${DPKG_ROOT:-}/etc/default/ekm" "${DPKG_ROOT:-}/etc/sysconfig/ekm"; do
  # The service's own settings: EKM_HOME and a PATH reaching Node.js may be set there.
  # shellcheck disable=SC1090
  if [ -r "$f" ]; then . "$f"; break; fi
done

ekm_fail() {
  echo "ekm: $*" >&2
  exit 1
}

# Installing or removing under a running server would swap its code mid-flight: refuse.
ekm_refuse_running() {
  pid=
  pidfile="${DPKG_ROOT:-}$EKM_HOME/run/ekm.pid"
  if [ -r "$pidfile" ]; then
    read -r pid <"$pidfile" || true
    case "$pid" in '' | *[!0-9]*) pid= ;; esac
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then pid=; fi
  fi
  if [ -z "$pid" ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && systemctl is-active --quiet ekm 2>/dev/null; then
    pid=$(systemctl show --property MainPID --value ekm 2>/dev/null)
  fi
  if [ -n "$pid" ]; then
    ekm_fail "the ekm service is running on this server (pid $pid): stop the triplet first (sudo service ekm stop on EP, Partner and Aux), install, then start Partner and Aux, then the EP; nothing was changed"
  fi
}

# ekm_preinst install|upgrade [old-version]
ekm_preinst() {
  ekm_require_node "ekm $EKM_VERSION cannot be installed" || exit 1
  ekm_refuse_running
  if [ "$1" = upgrade ] && [ -n "${2:-}" ] && dpkg --compare-versions "$EKM_VERSION" lt "$2"; then
    ekm_fail "refusing to downgrade ekm $2 to $EKM_VERSION: an older release may not read the store a newer one migrated (EKM_SCHEMA_TOO_NEW); install $2 or newer, or restore a backup made by $EKM_VERSION; nothing was changed"
  fi
}

# The ekm account's "uid:gid" in the target's /etc/passwd, or nothing. Read from the file, not
# through NSS: under `dpkg --root` the account belongs to the target, not to this machine.
ekm_account() {
  if [ -z "${DPKG_ROOT:-}" ]; then
    getent passwd ekm | awk -F: '{ print $3 ":" $4 }'
  else
    awk -F: '$1 == "ekm" { print $3 ":" $4 }' "$DPKG_ROOT/etc/passwd" 2>/dev/null
  fi
}

# Enables the service at boot in the target: systemd where it runs (or, under `dpkg --root`,
# where the target has the unit), else the SysV links (update-rc.d honours DPKG_ROOT itself).
ekm_enable_at_boot() {
  if [ -n "${DPKG_ROOT:-}" ]; then
    # SYSTEMCTL_SKIP_SYSV: systemctl would chroot into the target to run its SysV hook; update-rc.d does that part.
    if command -v systemctl >/dev/null 2>&1; then SYSTEMCTL_SKIP_SYSV=1 systemctl --root="$DPKG_ROOT" enable ekm.service >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d ekm defaults >/dev/null || true; fi
  elif [ -d /run/systemd/system ]; then
    systemctl enable ekm.service >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d ekm defaults >/dev/null || true
  elif command -v chkconfig >/dev/null 2>&1; then
    chkconfig --add ekm || true
  fi
}

# systemd re-reads its units, only on a live system (not under `dpkg --root`).
ekm_systemd_reload() {
  if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
}

# ekm_postinst install|upgrade [old-version]
ekm_postinst() {
  if [ -z "$(ekm_account)" ]; then
    # --prefix: the account goes into the target's /etc files (dpkg --root), not this machine's.
    useradd ${DPKG_ROOT:+--prefix "$DPKG_ROOT"} --system --user-group --home-dir "$EKM_HOME" --no-create-home --shell /usr/sbin/nologin ekm ||
      ekm_fail "could not create the system user ekm (useradd failed): create it by hand (useradd --system --user-group --home-dir $EKM_HOME --shell /usr/sbin/nologin ekm), then dpkg --configure ekm"
  fi
  account=$(ekm_account)
  [ -n "$account" ] || ekm_fail "the user ekm is not in ${DPKG_ROOT:-}/etc/passwd after useradd: ekm runs as that user; create it, then dpkg --configure ekm"
  # Data and configuration are created once and never touched again: an upgrade keeps them as they are.
  # Numeric owner: under `dpkg --root` this machine does not know the target's ekm account.
  [ -d "${DPKG_ROOT:-}$EKM_HOME" ] || install -d -o "${account%%:*}" -g "${account#*:}" -m 0700 "${DPKG_ROOT:-}$EKM_HOME"
  [ -d "${DPKG_ROOT:-}/etc/ekm" ] || install -d -m 0755 "${DPKG_ROOT:-}/etc/ekm"
  ekm_systemd_reload
  if [ "$1" = install ]; then
    # Enabled for boot; the unit does not start before the server is bootstrapped (ConditionPathExists).
    ekm_enable_at_boot
    echo "ekm $EKM_VERSION installed in /opt/ekm. Bootstrap this server as user ekm: sudo -u ekm /opt/ekm/bin/ekm_boot_<role>.sh ... -fips; then sudo service ekm start (Partner and Aux, then the EP). See /opt/ekm/docs/operations.md."
  else
    echo "ekm upgraded${2:+ from $2} to $EKM_VERSION; $EKM_HOME and /etc/ekm kept. When all three servers of the triplet run $EKM_VERSION: sudo service ekm start on Partner and Aux, then on the EP; ucl server test."
  fi
}

# ekm_prerm remove|upgrade
ekm_prerm() {
  [ "$1" = remove ] || return 0
  ekm_refuse_running
  if [ -n "${DPKG_ROOT:-}" ]; then
    if command -v systemctl >/dev/null 2>&1; then SYSTEMCTL_SKIP_SYSV=1 systemctl --root="$DPKG_ROOT" disable ekm.service >/dev/null 2>&1 || true; fi
  elif [ -d /run/systemd/system ]; then
    systemctl disable ekm.service >/dev/null 2>&1 || true
  fi
}

# ekm_postrm remove|purge|...
ekm_postrm() {
  ekm_systemd_reload
  case "$1" in
    remove | purge)
      if [ "$1" = purge ] && command -v update-rc.d >/dev/null 2>&1; then update-rc.d ekm remove >/dev/null || true; fi
      # Keys are never deleted by a package manager: only an operator who knows they are not needed.
      echo "ekm removed; $EKM_HOME (keys, identity, configuration) and /etc/ekm are kept: delete them by hand once no key is needed"
      ;;
  esac
}
