#!/usr/bin/env bash
# Starts the loopback mail server for the email tests in the background and waits until it
# answers: aiosmtpd SMTP on 2525 (STARTTLS offered) and SMTPS on 2465, Dovecot IMAP on 1143 and
# IMAPS on 10993, TLS from a test CA written to ROOT/ca.pem. Needs `dovecot-imapd` (Debian),
# `aiosmtpd` (PyPI) and `openssl`. Then run the tests with CS_TEST_MAIL=1.
#
#   bash cs-channels/tests/support/mail-up.sh [ROOT]      # ROOT defaults to /tmp/cs-test-mail
#   kill "$(cat ROOT/server.pid)"                         # to stop it
set -euo pipefail
root="${1:-/tmp/cs-test-mail}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$root"
if [ -f "$root/server.pid" ] && kill -0 "$(cat "$root/server.pid")" 2>/dev/null; then
  echo "mail server already running (pid $(cat "$root/server.pid"))"
  exit 0
fi
python3 "$here/mailserver.py" "$root" \
  --smtp-port "${CS_TEST_MAIL_SMTP_PORT:-2525}" --imap-port "${CS_TEST_MAIL_IMAP_PORT:-1143}" \
  --smtps-port "${CS_TEST_MAIL_SMTPS_PORT:-2465}" --imaps-port "${CS_TEST_MAIL_IMAPS_PORT:-10993}" \
  >"$root/server.log" 2>&1 &
echo $! >"$root/server.pid"
for _ in $(seq 1 100); do
  if grep -q '^ready' "$root/server.log" 2>/dev/null; then
    echo "mail server ready (pid $(cat "$root/server.pid"), log $root/server.log)"
    exit 0
  fi
  if ! kill -0 "$(cat "$root/server.pid")" 2>/dev/null; then
    cat "$root/server.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "mail server did not come up in 20 s" >&2
cat "$root/server.log" >&2
exit 1
