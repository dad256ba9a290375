# bash completion for imgbatch(1). Installed as
# <prefix>/share/bash-completion/completions/imgbatch.
# Works with the bash-completion package (_init_completion, _filedir) and without it.
_imgbatch_files() {
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
    else
        local IFS=$'\n'
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

_imgbatch() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi

    local global="--config --db -v --verbose --log-level --help --version"
    local commands="init enqueue run status wait jobs show export report cancel retry providers pause resume sim"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --config | --db | --log-level) ((i++)) ;;
            -*) ;;
            *) cmd="${words[i]}"; break ;;
        esac
    done

    case "$prev" in
        --config | -o | --output | --port-file | --relative-to) _imgbatch_files; return ;;
        --db) _imgbatch_files 'db'; return ;;
        --log-level)
            COMPREPLY=($(compgen -W "trace debug info warn error critical off" -- "$cur"))
            return ;;
        --format)
            if [[ $cmd == export ]]; then
                COMPREPLY=($(compgen -W "jsonl csv" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "jsonl csv txt" -- "$cur"))
            fi
            return ;;
        --state)
            COMPREPLY=($(compgen -W "pending queued running succeeded failed blocked cancelled rejected" -- "$cur"))
            return ;;
        --batch | --model | --provider | --n | --priority | --limit | --interval | --max-seconds | \
            --reason | --listen | --latency-ms | --jitter-ms | --rpm | --image-size | --fault-rate | \
            --seed | --api-key | --max-files | --gateway-rpm | --timeout | --thumb-size | --threads | \
            --token-uses | --batch-ms)
            return ;;
    esac

    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
        return
    fi

    local opts=""
    case "$cmd" in
        init) opts="" ;;
        enqueue) opts="--batch --model --provider --n --priority --strict --dry-run --estimate --budget --format --json" ;;
        run) opts="--until-idle --max-seconds --allow-multiple" ;;
        status) opts="--batch --json --watch --interval" ;;
        wait) opts="--batch --timeout --interval" ;;
        report) opts="--batch -o --output --thumb-size --threads" ;;
        jobs) opts="--batch --state --limit --json" ;;
        show) opts="--json" ;;
        export) opts="--batch --format -o --output --per-image --relative-to" ;;
        cancel) opts="--batch --all" ;;
        retry) opts="--batch --state" ;;
        providers) opts="--json" ;;
        pause) opts="--reason" ;;
        resume) opts="" ;;
        sim) opts="--listen --latency-ms --jitter-ms --rpm --image-size --fault-rate --seed --port-file --api-key --max-files --ratelimit-headers --gateway-rpm --token-uses --batch-ms" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
    elif [[ $cmd == enqueue ]]; then
        _imgbatch_files '@(jsonl|csv|txt|json)'
    fi
} && complete -F _imgbatch imgbatch
