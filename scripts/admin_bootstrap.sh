#!/bin/sh
# The ACCOUNTADMIN part of a deploy, with the Snowflake CLI (`snow`) and a POSIX shell only: the admin steps
# of deploy/steps.txt (external_access/02 part 1 and part 2) as ACCOUNTADMIN, run by scripts/deploy.sh.
#
# Part 2 names the network rules and secrets that external_access/01 creates in the database that sql/01
# creates, so by default this runs every step up to the last admin step, as `api2snow deploy` run by an admin
# does: the owner steps in between run as the owner role, which the admin's user must be able to use (part 1
# grants it to SYSADMIN; if `snow` refuses the role, GRANT ROLE <owner role> TO USER <admin>, then re-run).
# Once the database exists, `--admin-only` runs the admin steps alone (after a change of hosts, bucket,
# roles or API A's credentials).
#
# usage: scripts/admin_bootstrap.sh --connection ADMIN_CONNECTION [--env dev|prod] [--env-file FILE]
#                                   [--set KEY=VALUE ...] [--admin-only] [--dry-run]
# Needs API2SNOW_AWS_ROLE_ARN and the OAuth2 sources' client credentials (API2SNOW_API_A_CLIENT_ID, ...), and,
# without --admin-only, external_access/01's secrets too (API2SNOW_API_B_KEY, ...; --dry-run names what is
# missing). docs/DEPLOY.md "Snow-only scripts".
set -eu

mode=bootstrap
for arg in "$@"; do
    case $arg in
    --admin-only) mode=admin-only ;;
    -h | --help)
        sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    esac
done
# Drop --admin-only from the arguments (the rest go to deploy.sh as they are).
count=$#
while [ "$count" -gt 0 ]; do
    arg=$1
    shift
    count=$((count - 1))
    [ "$arg" = --admin-only ] || set -- "$@" "$arg"
done
exec "$(dirname "$0")/deploy.sh" --mode "$mode" "$@"
