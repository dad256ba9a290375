# bash completion for imgbatch(1). Installed as
# <prefix>/share/bash-completion/completions/imgbatch.
_imgbatch() {
    local cur prev words cword
    _init_completion || return

    local global="--config --db -v --verbose --log-level --help --version"
    local commands="init enqueue run status jobs show export cancel retry providers pause resume sim"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --config | --db | --log-level) ((i++)) ;;
            -*) ;;
            *) cmd="${words[i]}"; break ;;
        esac
    done

    case "$prev" in
        --config | -o | --output | --port-file) _filedir; return ;;
        --db) _filedir 'db'; return ;;
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
            --seed | --api-key | --max-files | --gateway-rpm)
            return ;;
    esac

    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
        return
    fi

    local opts=""
    case "$cmd" in
        init) opts="" ;;
        enqueue) opts="--batch --model --provider --n --priority --strict --dry-run --format" ;;
        run) opts="--until-idle --max-seconds --allow-multiple" ;;
        status) opts="--batch --json --watch --interval" ;;
        jobs) opts="--batch --state --limit --json" ;;
        show) opts="--json" ;;
        export) opts="--batch --format -o --output" ;;
        cancel) opts="--batch --all" ;;
        retry) opts="--batch --state" ;;
        providers) opts="--json" ;;
        pause) opts="--reason" ;;
        resume) opts="" ;;
        sim) opts="--listen --latency-ms --jitter-ms --rpm --image-size --fault-rate --seed --port-file --api-key --max-files --ratelimit-headers --gateway-rpm" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
    elif [[ $cmd == enqueue ]]; then
        _filedir '@(jsonl|csv|txt|json)'
    fi
} && complete -F _imgbatch imgbatch
