#!/bin/sh
# Deploy api2snow with the Snowflake CLI (`snow`) and a POSIX shell only: for CI systems that cannot
# pip-install this project. It runs deploy/steps.txt, the same steps in the same order as `api2snow deploy`,
# each as one `snow` call in the project root; `snow` renders the templates itself (<% ctx.env.x %> from
# snowflake.yml's env plus `--env` overrides, <% x %> from `-D`). docs/DEPLOY.md "Snow-only scripts".
#
# Environment values: snowflake.yml's `env:` block, then deploy/envs.yml [--env NAME], then --env-file, then
# --set; both YAML blocks are read as flat `key: value` lines, and anything else there is refused by line.
# Secrets: the environment variables `api2snow deploy` reads (API2SNOW_API_B_KEY ...); they reach `snow` as
# `-D name=value` arguments (visible to `ps` on this machine while a step runs) and are never printed.
# python3 (standard library only) is needed for the Snowpipe notification step, which reads JSON.
set -eu

PROG=deploy.sh
ADMIN_ROLE=ACCOUNTADMIN
STEPS_FILE=deploy/steps.txt
ENVS_FILE=deploy/envs.yml
PART_2='-- PART 2:'
load_template_names() { # HOST_NAMES, SECRET_NAMES: the <% name %> variables of external_access/ (not
    # <% ctx.env.x %>), read from the files api2snow generates from the source declarations: NAME_host is the
    # host[:port] of env NAME_base_url, any other one is a secret
    _vars=$(awk '{
        s = $0
        while (match(s, /<%[ \t]*[a-z0-9_]+[ \t]*%>/)) {
            v = substr(s, RSTART, RLENGTH); gsub(/<%[ \t]*|[ \t]*%>/, "", v); print v
            s = substr(s, RSTART + RLENGTH)
        }
    }' external_access/*.sql | sort -u)
    HOST_NAMES=$(printf '%s\n' $_vars | grep '_host$' | tr '\n' ' ')
    SECRET_NAMES=$(printf '%s\n' $_vars | grep -v '_host$' | tr '\n' ' ')
}
SNOW=${API2SNOW_SNOW_BIN:-snow}

usage() {
    cat <<'EOF'
usage: scripts/deploy.sh --connection NAME [--env dev|prod] [--env-file FILE] [--set KEY=VALUE ...]
                         [--skip-admin] [--dry-run] [--print-env]

  -c, --connection NAME  the `snow` connection (~/.snowflake/config.toml)
  --env NAME             the environment of deploy/envs.yml (default dev)
  --env-file FILE        KEY=VALUE lines on top of deploy/envs.yml, for keys of snowflake.yml's env: the value
                         is what follows the first `=`, without surrounding blanks, taken as it is (no quotes,
                         no expansion); `#` starts a comment line
  -D, --set KEY=VALUE    one more override on top (repeatable)
  --skip-admin           do not run the ACCOUNTADMIN steps; print what an admin runs instead
  --dry-run              print every `snow` command (secrets as ***); run nothing, connect to nothing
  --print-env            print the environment values the steps use, and exit
  --mode MODE            full (default) | bootstrap | admin-only: see scripts/admin_bootstrap.sh

Secrets come from API2SNOW_<NAME> environment variables, one per secret template variable <% name %> of
external_access/ (API2SNOW_API_B_KEY, API2SNOW_AWS_ROLE_ARN, ...; --dry-run names the missing ones).
API2SNOW_SNOW_BIN names another `snow`.
EOF
}

die() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    exit 1
}

# ---- small helpers (no subshells where a loop calls them) ------------------------------------------------
trim() { # T = $1 without leading and trailing blanks
    T=$1
    T=${T#"${T%%[![:space:]]*}"}
    T=${T%"${T##*[![:space:]]}"}
}

shquote() { # Q = $1 quoted for sh, as it is shown and eval'ed
    case $1 in
    '') Q="''" ;;
    *[!A-Za-z0-9_./:=@%+,-]*)
        _rest=$1 Q=
        while :; do
            case $_rest in
            *\'*)
                Q="$Q${_rest%%\'*}'\\''"
                _rest=${_rest#*\'}
                ;;
            *)
                Q="$Q$_rest"
                break
                ;;
            esac
        done
        Q="'$Q'"
        ;;
    *) Q=$1 ;;
    esac
}

valid_key() {
    case $1 in '' | [!A-Za-z_]* | *[!A-Za-z0-9_]*) return 1 ;; esac
}

get() { # V = the shell variable named $1 ('' when unset)
    eval "V=\${$1-}"
}

upper() { # U = $1 in upper case
    U=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
}

sql_quoted() { # S = $1 for inside a single-quoted Snowflake string (backslash escapes are live there)
    S=$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")
}

# ---- environment values ----------------------------------------------------------------------------------
# Prints `key=value` for each line of the top-level block BLOCK: of a YAML file, refusing (by line) anything
# but flat `key: value` lines whose value YAML reads as the same text: so what this reads, `api2snow` reads
# identically, and values YAML would type (yes, 1.5, null ...) must be quoted.
yaml_block() {
    awk -v file="$1" -v block="$2" '
    function fail(msg) { printf "%s:%d: %s\n", file, NR, msg > "/dev/stderr"; failed = 1; exit 1 }
    /^[^ \t#]/ {
        inside = 0
        head = $0; sub(/[ \t]+#.*$/, "", head); sub(/[ \t]+$/, "", head)
        if (head == block ":") { inside = 1; found = 1 }
        next
    }
    !inside || /^[ \t]*(#.*)?$/ { next }
    {
        if ($0 !~ /^ +[A-Za-z_][A-Za-z0-9_]*:([ \t]|$)/) fail("not a flat `key: value` line, which the scripts read")
        match($0, /^ +/)
        if (indent && RLENGTH != indent) fail("indented unlike the lines above it")
        indent = RLENGTH
        key = substr($0, RLENGTH + 1); sub(/:.*/, "", key)
        value = $0; sub(/^ +[A-Za-z_][A-Za-z0-9_]*:[ \t]*/, "", value)
        if (value ~ /^"/) {
            if (value !~ /^"[^"\\]*"[ \t]*(#.*)?$/) fail("a double-quoted value with escapes or text after it")
            sub(/^"/, "", value); sub(/"[ \t]*(#.*)?$/, "", value)
        } else if (value ~ /^\047/) {
            if (value !~ /^\047([^\047]|\047\047)*\047[ \t]*(#.*)?$/) fail("a single-quoted value with text after it")
            sub(/^\047/, "", value); sub(/\047[ \t]*(#.*)?$/, "", value); gsub(/\047\047/, "\047", value)
        } else {
            if (value ~ /^#/) value = ""
            sub(/[ \t]+#.*$/, "", value); sub(/[ \t]+$/, "", value)
            if (value ~ /^[][{}&*!|>%@`,?:=#-]/ || value ~ /: /) fail("quote this value: YAML reads it as syntax")
            lower = tolower(value)
            if (lower ~ /^(true|false|yes|no|on|off|null|~)$/) fail("quote " value ": YAML reads it as a boolean or null")
            if (value ~ /^[+.0-9]/ && value !~ /^(0|[1-9][0-9]*)$/) fail("quote " value ": YAML may read it as a number or date")
        }
        if (key in seen) fail(key " is set twice")
        seen[key] = 1
        printf "%s=%s\n", key, value
    }
    END {
        if (failed) exit 1
        if (!found) { printf "%s: no `%s:` block\n", file, block > "/dev/stderr"; exit 1 }
    }' "$1"
}

KEYS=
load_defaults() { # DEFAULT_<key> and VALUE_<key> from snowflake.yml env, KEYS in its order
    _lines=$(yaml_block snowflake.yml env) || exit 1
    while IFS= read -r _kv; do
        [ -n "$_kv" ] || continue
        _key=${_kv%%=*}
        eval "DEFAULT_$_key=\${_kv#*=}; VALUE_$_key=\${_kv#*=}"
        KEYS="$KEYS $_key"
    done <<EOF
$_lines
EOF
}

override() { # ORIGIN KEY VALUE: one value on top of snowflake.yml's, for a key it defines
    valid_key "$2" || die "$1: not a key: $2"
    case " $KEYS " in *" $2 "*) ;; *) die "$1 sets $2: not in snowflake.yml env" ;; esac
    eval "VALUE_$2=\$3"
}

load_overrides() {
    _lines=$(yaml_block "$ENVS_FILE" "$ENV_NAME") || die "cannot read --env $ENV_NAME from $ENVS_FILE (above)"
    while IFS= read -r _kv; do
        [ -z "$_kv" ] || override "$ENVS_FILE [$ENV_NAME]" "${_kv%%=*}" "${_kv#*=}"
    done <<EOF
$_lines
EOF
    if [ -n "$ENV_FILE" ]; then
        [ -f "$ENV_FILE" ] || die "no --env-file $ENV_FILE"
        _n=0
        while IFS= read -r _kv || [ -n "$_kv" ]; do
            _n=$((_n + 1))
            trim "$_kv"
            case $T in '' | \#*) continue ;; *=*) ;; *) die "$ENV_FILE:$_n: expected KEY=VALUE" ;; esac
            trim "${_kv%%=*}"
            _key=$T
            trim "${_kv#*=}"
            override "$ENV_FILE:$_n" "$_key" "$T"
        done <"$ENV_FILE"
    fi
    while IFS= read -r _kv; do
        [ -n "$_kv" ] || continue
        case $_kv in *=*) ;; *) die "--set expects KEY=VALUE, got '$_kv'" ;; esac
        override --set "${_kv%%=*}" "${_kv#*=}"
    done <<EOF
$SETS
EOF
    [ -n "${VALUE_owner_role-}" ] || die "snowflake.yml env has no owner_role"
    [ -n "${VALUE_database-}" ] || die "snowflake.yml env has no database"
}

host_port() { # H = the HOST_PORT network-rule value of base URL $1 (as api2snow's project.host_port)
    case $1 in
    http://*) _scheme=http _rest=${1#http://} ;;
    https://*) _scheme=https _rest=${1#https://} ;;
    *) die "not an http(s) base URL: '$1'" ;;
    esac
    _rest=${_rest%%/*}
    _rest=${_rest%%\?*}
    _rest=${_rest%%#*}
    _rest=${_rest##*@}
    case $_rest in '' | \[* | :*) die "not an http(s) base URL api2snow can read: '$1'" ;; esac
    H=$(printf '%s' "${_rest%%:*}" | tr '[:upper:]' '[:lower:]')
    case $_rest in
    *:*)
        _port=${_rest#*:}
        case $_port in '' | *[!0-9]*) die "not a port in '$1'" ;; esac
        _port=${_port#"${_port%%[!0]*}"} # 08080 -> 8080, as a number
        H="$H:${_port:-0}"
        ;;
    *) [ "$_scheme" = https ] || H="$H:80" ;;
    esac
}

load_hosts() { # HOST_api_a_host ... from the base URLs
    for _name in $HOST_NAMES; do
        get "VALUE_${_name%_host}_base_url"
        host_port "$V"
        eval "HOST_$_name=\$H"
    done
}

print_env() {
    for _key in $KEYS; do
        get "VALUE_$_key"
        printf '%s=%s\n' "$_key" "$V"
    done
    for _name in $HOST_NAMES; do
        get "HOST_$_name"
        printf '%s=%s\n' "$_name" "$V"
    done
}

# ---- the steps file ----------------------------------------------------------------------------------------
extract_part() { # FILE N: part 1 (before the line starting PART_2) or part 2 (from it) of FILE
    awk -v part="$2" -v cut="$PART_2" 'index($0, cut) == 1 { seen = 1 } (part == 1 && !seen) || (part == 2 && seen)' "$1"
}

template_refs() { # the <% name %> variables of SECRET_NAMES and HOST_NAMES that the input (files or stdin) uses
    awk -v names="$SECRET_NAMES $HOST_NAMES" '
    BEGIN { n = split(names, list, " ") }
    { for (i = 1; i <= n; i++) if ($0 ~ ("<%[ \t]*" list[i] "[ \t]*%>")) used[list[i]] = 1 }
    END { for (i = 1; i <= n; i++) if (list[i] in used) printf "%s ", list[i] }' "$@"
}

N=0
LAST_ADMIN=0
load_steps() { # ROLE_i KIND_i TITLE_i TARGET_i FILE_i REFS_i for i in 1..N, checked as api2snow checks them
    [ -f "$STEPS_FILE" ] || die "no $STEPS_FILE"
    _n=0
    while IFS= read -r _line || [ -n "$_line" ]; do
        _n=$((_n + 1))
        _where="$STEPS_FILE:$_n"
        trim "$_line"
        case $T in
        '' | \#*) continue ;;
        *'|'*'|'*'|'*) ;;
        *) die "$_where: expected \`ROLE | KIND | NAME | TARGET\`, got '$T'" ;;
        esac
        _l=$T
        trim "${_l%%|*}"
        _role=$T _l=${_l#*|}
        trim "${_l%%|*}"
        _kind=$T _l=${_l#*|}
        trim "${_l%%|*}"
        _name=$T
        trim "${_l#*|}"
        _target=$T
        if [ -z "$_name" ] || [ -z "$_target" ]; then die "$_where: a step needs a name and a target"; fi
        case $_role in admin | owner) ;; *) die "$_where: role '$_role' is not one of admin, owner" ;; esac
        _file=
        case $_kind in
        file | notify)
            _file=$_target _title="$_name ($_target)"
            ;;
        part)
            _file=${_target% *} _part=${_target##* }
            case $_part in 1 | 2) ;; *) die "$_where: a part step's target is \`FILE 1\` or \`FILE 2\`" ;; esac
            _title="$_name ($_file part $_part)"
            ;;
        sql | snow) _title=$_name ;;
        *) die "$_where: kind '$_kind' is not one of file, part, sql, snow, notify" ;;
        esac
        case $_role:$_kind in admin:snow | admin:notify) die "$_where: a $_kind step runs as owner" ;; esac
        if [ -n "$_file" ] && [ ! -f "$_file" ]; then die "$_where: no file $_file"; fi
        if [ "$_kind" = part ] && ! grep -q "^$PART_2" "$_file"; then
            die "$_file has no line starting '$PART_2'"
        fi
        case $_kind in
        file) _refs=$(template_refs "$_file") ;;
        part) _refs=$(extract_part "$_file" "$_part" | template_refs) ;;
        sql) _refs=$(printf '%s\n' "$_target" | template_refs) ;;
        *) _refs= ;;
        esac
        N=$((N + 1))
        eval "ROLE_$N=\$_role KIND_$N=\$_kind TITLE_$N=\$_title TARGET_$N=\$_target FILE_$N=\$_file REFS_$N=\$_refs"
        if [ "$_role" = admin ]; then LAST_ADMIN=$N; fi
    done <"$STEPS_FILE"
    for _sql in sql/*.sql; do
        [ -f "$_sql" ] || continue
        _count=0 _i=1
        while [ "$_i" -le "$N" ]; do
            get "KIND_$_i"
            _k=$V
            get "TARGET_$_i"
            if [ "$_k" = file ] && [ "$V" = "$_sql" ]; then _count=$((_count + 1)); fi
            _i=$((_i + 1))
        done
        [ "$_count" -eq 1 ] || die "$STEPS_FILE must run $_sql exactly once (a file step); it runs it $_count times"
    done
}

# ---- one step ----------------------------------------------------------------------------------------------
cmd_add() { # append words to CMD (what runs) and SHOWN (what is printed)
    for _arg in "$@"; do
        shquote "$_arg"
        CMD="$CMD $Q" SHOWN="$SHOWN $Q"
    done
}

cmd_env_overrides() { # --env key=value for each value that differs from snowflake.yml, as api2snow passes them
    for _key in $KEYS; do
        get "VALUE_$_key"
        _value=$V
        get "DEFAULT_$_key"
        if [ "$_value" != "$V" ]; then cmd_add --env "$_key=$_value"; fi
    done
}

cmd_variables() { # -D name=value for the host and secret variables the step's SQL uses; secrets shown masked
    for _name in $1; do
        case " $HOST_NAMES " in
        *" $_name "*)
            get "HOST_$_name"
            cmd_add -D "$_name=$V"
            ;;
        *)
            upper "API2SNOW_$_name"
            get "$U"
            if [ -n "$V" ]; then _shown='***'; else _shown="<from env $U>"; fi
            sql_quoted "$V"
            shquote "$_name=$S"
            CMD="$CMD -D $Q"
            shquote "$_name=$_shown"
            SHOWN="$SHOWN -D $Q"
            ;;
        esac
    done
}

build_cmd() { # CMD, SHOWN and STDIN_PART for step $1 (role $2: the role it runs as)
    get "KIND_$1"
    _kind=$V
    get "TARGET_$1"
    _target=$V
    get "FILE_$1"
    _file=$V
    get "REFS_$1"
    _refs=$V
    CMD= SHOWN=snow STDIN_PART=
    _wh=
    if [ "$2" != "$ADMIN_ROLE" ]; then _wh=${VALUE_warehouse-}; fi
    if [ "$_kind" = snow ]; then
        set -f
        cmd_add $_target # plain words, split like api2snow splits them
        set +f
        cmd_add --connection "$CONNECTION" --role "$2"
        if [ -n "$_wh" ]; then cmd_add --warehouse "$_wh"; fi
        cmd_env_overrides
        return 0
    fi
    cmd_add sql --connection "$CONNECTION" --role "$2"
    if [ "$_kind" = notify ]; then
        cmd_add --format json
    elif [ -n "$_wh" ]; then
        cmd_add --warehouse "$_wh"
    fi
    cmd_add --enable-templating STANDARD
    cmd_env_overrides
    cmd_variables "$_refs"
    case $_kind in
    file) cmd_add -f "$_file" ;;
    part)
        cmd_add --stdin
        STDIN_PART=${_target##* }
        ;;
    sql) cmd_add -q "$_target" ;;
    notify)
        _schema=$(python3 scripts/pipe_notifications.py schema "$_file") || die "cannot read the pipes of $_file"
        cmd_add -q "SHOW PIPES IN SCHEMA $_schema"
        ;;
    esac
}

mask() { # stdin to stdout, indented, without the secret values (as given and SQL-quoted, 4+ characters)
    # and without Python's dependency warnings, which say nothing about the step
    (
        _vars=
        for _name in $SECRET_NAMES; do
            upper "API2SNOW_$_name"
            get "$U"
            sql_quoted "$V"
            eval "API2SNOW_QUOTED_$_name=\$S"
            export "API2SNOW_QUOTED_$_name"
            _vars="API2SNOW_QUOTED_$_name $_vars $U"
        done
        awk -v names="$_vars" '
        BEGIN { n = split(names, k, " "); m = 0; for (i = 1; i <= n; i++) if (length(ENVIRON[k[i]]) >= 4) v[++m] = ENVIRON[k[i]] }
        /^[^ ]+\.py:[0-9]+: [A-Za-z]*Warning:/ || /^[ \t]*warnings\.warn\(/ { next }
        {
            line = $0
            for (i = 1; i <= m; i++) {
                out = ""
                while ((p = index(line, v[i])) > 0) { out = out substr(line, 1, p - 1) "***"; line = substr(line, p + length(v[i])) }
                line = out line
            }
            print "    " line
        }'
    )
}

step_failed() { # LABEL RC OUTPUT
    {
        printf '%s: step %s failed (snow exited %s)\n' "$PROG" "$1" "$2"
        printf '    command: %s\n' "$SHOWN"
        printf '%s\n' "$3" | mask
    } >&2
    exit 1
}

run_step() { # I LABEL: run step I's CMD; the first failure ends the script naming the step
    get "KIND_$1"
    _kind=$V
    get "FILE_$1"
    _file=$V
    eval "set -- $CMD"
    if [ -n "$STDIN_PART" ]; then
        _out=$(extract_part "$_file" "$STDIN_PART" | "$SNOW" "$@" 2>&1) && _rc=0 || _rc=$?
    elif [ "$_kind" = notify ]; then
        _out=$("$SNOW" "$@" </dev/null) && _rc=0 || _rc=$? # the JSON alone; snow's stderr goes through
    else
        _out=$("$SNOW" "$@" </dev/null 2>&1) && _rc=0 || _rc=$?
    fi
    [ "$_rc" -eq 0 ] || step_failed "$LABEL" "$_rc" "$_out"
    if [ "$_kind" = notify ]; then
        _vars=
        for _key in $KEYS; do
            get "VALUE_$_key"
            shquote "$_key=$V"
            _vars="$_vars --var $Q"
        done
        _shown=$(printf '%s\n' "$_out" | eval "python3 scripts/pipe_notifications.py show \"\$_file\" $_vars") ||
            step_failed "$LABEL" 1 "$_shown"
        printf '%s\n' "$_shown" | sed 's/^/    /'
    fi
}

# ---- main ----------------------------------------------------------------------------------------------------
CONNECTION= ENV_NAME=dev ENV_FILE= SETS= SKIP_ADMIN=0 DRY_RUN=0 PRINT_ENV=0 MODE=full
while [ $# -gt 0 ]; do
    case $1 in
    -c | --connection | --env | --env-file | -D | --set | --mode)
        [ $# -ge 2 ] || die "$1 needs a value"
        case $1 in
        -c | --connection) CONNECTION=$2 ;;
        --env) ENV_NAME=$2 ;;
        --env-file) ENV_FILE=$2 ;;
        --mode) MODE=$2 ;;
        *)
            case $2 in *'
'*) die "$1: a value cannot span lines" ;; esac
            SETS="$SETS
$2"
            ;;
        esac
        shift 2
        ;;
    --skip-admin) SKIP_ADMIN=1 && shift ;;
    --dry-run) DRY_RUN=1 && shift ;;
    --print-env) PRINT_ENV=1 && shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option $1 (--help lists them)" ;;
    esac
done
case $MODE in
full) ;;
bootstrap | admin-only)
    PROG=admin_bootstrap.sh
    [ "$SKIP_ADMIN" = 0 ] || die "--skip-admin and the admin bootstrap exclude each other"
    ;;
*) die "--mode is full, bootstrap or admin-only, not '$MODE'" ;;
esac
valid_key "$ENV_NAME" || die "--env: not an environment name: '$ENV_NAME'"
case $ENV_FILE in '' | /*) ;; *) ENV_FILE="$(pwd)/$ENV_FILE" ;; esac # before cd

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
load_template_names
load_defaults
load_overrides
load_hosts
if [ "$PRINT_ENV" = 1 ]; then
    print_env
    exit 0
fi
[ -n "$CONNECTION" ] || die "--connection NAME is required (--help)"
load_steps

TOTAL=0 # what this mode shows: run, or skipped with a note
_i=1
while [ "$_i" -le "$N" ]; do
    get "ROLE_$_i"
    case $MODE:$V in
    full:* | admin-only:admin) _sel=yes ;;
    bootstrap:*) if [ "$_i" -le "$LAST_ADMIN" ]; then _sel=yes; else _sel=no; fi ;;
    *) _sel=no ;;
    esac
    if [ "$_sel" = yes ] && [ "$V" = admin ] && [ "$SKIP_ADMIN" = 1 ]; then _sel=skip; fi
    eval "SEL_$_i=\$_sel"
    if [ "$_sel" != no ]; then TOTAL=$((TOTAL + 1)); fi
    _i=$((_i + 1))
done

if [ "$DRY_RUN" = 0 ]; then
    command -v "$SNOW" >/dev/null 2>&1 ||
        die "the Snowflake CLI \`snow\` is not on PATH (pip install snowflake-cli), or point API2SNOW_SNOW_BIN at it"
    _missing=
    _i=1
    while [ "$_i" -le "$N" ]; do
        get "SEL_$_i"
        if [ "$V" = yes ]; then
            get "REFS_$_i"
            for _name in $V; do
                case " $SECRET_NAMES " in *" $_name "*) ;; *) continue ;; esac
                upper "API2SNOW_$_name"
                get "$U"
                case " $_missing " in *" $U "*) ;; *) if [ -z "$V" ]; then _missing="$_missing $U"; fi ;; esac
            done
        fi
        _i=$((_i + 1))
    done
    [ -z "$_missing" ] || die "set$_missing in the environment: secret values are read from there only (docs/DEPLOY.md)"
    _mode=running
else
    _mode="dry run: nothing connects, nothing runs"
fi

printf '%s: env %s, database %s, connection %s (%s); the steps of %s, each `snow` call in %s\n' \
    "$PROG" "$ENV_NAME" "$VALUE_database" "$CONNECTION" "$_mode" "$STEPS_FILE" "$ROOT"
_index=0
_i=1
while [ "$_i" -le "$N" ]; do
    get "SEL_$_i"
    _sel=$V
    if [ "$_sel" = no ]; then
        _i=$((_i + 1))
        continue
    fi
    _index=$((_index + 1))
    get "TITLE_$_i"
    LABEL="[$_index/$TOTAL] $V"
    get "ROLE_$_i"
    if [ "$V" = admin ]; then _as=$ADMIN_ROLE; else _as=$VALUE_owner_role; fi
    build_cmd "$_i" "$_as"
    get "KIND_$_i"
    _kind=$V
    _note=
    if [ "$_kind" = part ]; then
        get "FILE_$_i"
        _note="  # part $STDIN_PART of $V, on standard input"
    fi
    if [ "$_sel" = skip ]; then
        printf '%s (skipped)\n' "$LABEL"
        printf '    --skip-admin: an account admin runs this step as %s: scripts/admin_bootstrap.sh --connection <admin connection> --env %s, or:\n' "$ADMIN_ROLE" "$ENV_NAME"
        printf '    $ %s%s\n' "$SHOWN" "$_note"
    elif [ "$DRY_RUN" = 1 ]; then
        printf '%s\n    $ %s%s\n' "$LABEL" "$SHOWN" "$_note"
        if [ "$_kind" = notify ]; then
            printf '    # then prints each pipe'"'"'s notification_channel and the bucket'"'"'s queue configurations (scripts/pipe_notifications.py)\n'
        fi
    else
        printf '%s ...\n' "$LABEL"
        _started=$(date +%s)
        run_step "$_i" "$LABEL"
        printf '%s ok (%s s)\n' "$LABEL" "$(($(date +%s) - _started))"
    fi
    _i=$((_i + 1))
done

if [ "$DRY_RUN" = 0 ]; then
    if [ "$MODE" = full ]; then
        printf 'deployed %s; first run: snow sql --connection %s -q '"'"'EXECUTE TASK %s.PIPELINE.ROOT'"'"'\n' \
            "$VALUE_database" "$CONNECTION" "$VALUE_database"
    else
        printf 'admin steps done; routine deploys run as %s: scripts/deploy.sh --connection <owner connection> --env %s --skip-admin\n' \
            "$VALUE_owner_role" "$ENV_NAME"
    fi
fi
