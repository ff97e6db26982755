// The pipeline panel's Runs section: the notebook's runs as the run store keeps them (the
// panel's, `nbops run`, sweeps, CI), so they survive a reload. Select one to open its output
// notebook, re-run it or build its bundle; select two to compare them (`nbops runs compare`).
// The server side is nbops.labserver.history (`/nbops/api/history...`).

import { JupyterFrontEnd } from '@jupyterlab/application';

import { ApiError, IApiErrorBody, IRunCell, IRunJob, api, requestAPI } from './api';
import { h } from './dom';

export interface IRunGate {
  gate: string;
  passed: boolean;
  reason?: string | null;
}

export interface IRunFailure {
  cell_index: number | null;
  cell_id: string | null;
  role?: string | null;
  ename: string;
  evalue: string;
}

export interface IRunBundle {
  folder: string;
  name: string;
  version: number;
}

/** One run of the notebook, as `GET history` lists it. */
export interface IRunSummary {
  run_id: string;
  short_id: string;
  status: string;
  started_at: string;
  ended_at: string | null;
  duration_s: number | null;
  sweep_id: string | null;
  rerun_of: string | null;
  ci: boolean;
  parameters: Record<string, unknown>;
  metrics: Record<string, number | null>;
  gates: IRunGate[];
  failure: IRunFailure | null;
  /** Each code cell's step tag, duration and outcome: the DAG draws them for the run
   * selected here. */
  cells?: IRunCell[];
  has_model: boolean;
  has_output: boolean;
  bundle_blocked: string | null;
  bundle: IRunBundle | null;
}

export interface IComparisonRow {
  kind: 'param' | 'metric';
  name: string;
  values: unknown[];
  shown: string[];
  differs: boolean;
}

export interface IComparison {
  runs: string[];
  rows: IComparisonRow[];
}

const q = encodeURIComponent;

export const runsApi = {
  history: (path: string) =>
    requestAPI<{ runs: IRunSummary[]; store: string }>(`history?path=${q(path)}`),
  compare: (path: string, runs: string[]) =>
    requestAPI<IComparison>(
      `history/compare?path=${q(path)}${runs.map(r => `&run=${q(r)}`).join('')}`
    ),
  output: (path: string, runId: string) =>
    requestAPI<{ run_id: string; output_notebook: string }>('history/output', {
      method: 'POST',
      body: JSON.stringify({ path, run_id: runId })
    }),
  rerun: (path: string, runId: string) =>
    requestAPI<{ job: string; rerun_of: string; warnings: string[] }>('history/rerun', {
      method: 'POST',
      body: JSON.stringify({ path, run_id: runId })
    })
};

const FINISHED = new Set(['completed', 'failed', 'killed', 'timeout', 'interrupted',
  'terminated', 'abandoned', 'error']);
const LIST_POLL_MS = 2000;
const JOB_POLL_MS = 1000;
const MAX_SELECTED = 2;


/** A value as Python writes it (`True`, `None`, `'text'`). */
function pyValue(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (value === true || value === false) {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'string') {
    return `'${value}'`;
  }
  return JSON.stringify(value);
}

function metricText(value: number | null): string {
  if (value === null || value === undefined) {
    return '—';
  }
  return Number.isInteger(value) ? String(value) : Number(value.toPrecision(4)).toString();
}

/** When a run started: "just now", "5 min ago", "14:02" today, else the date. */
export function whenText(iso: string, now: Date = new Date()): string {
  const started = new Date(iso);
  if (isNaN(started.getTime())) {
    return iso;
  }
  const seconds = (now.getTime() - started.getTime()) / 1000;
  if (seconds < 60) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  const time = started.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (started.toDateString() === now.toDateString()) {
    return time;
  }
  return `${started.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function errorBody(error: unknown): IApiErrorBody {
  return error instanceof ApiError ? error.body : { message: String(error) };
}

/** What the panel gives the section: re-render, and jump to a cell of the open notebook. */
export interface IRunsHost {
  render(): void;
  jumpToCell(index: number | null | undefined, id: string | null | undefined): void;
}

interface IMessage {
  text: string;
  folder?: string;
  warning?: boolean;
}

/** What the section remembers per notebook (by path). */
interface IRunsState {
  seq: number;
  runs: IRunSummary[] | null;
  loading: boolean;
  error: IApiErrorBody | null;
  selected: string[];
  comparison: IComparison | null;
  comparisonKey: string;
  comparisonError: IApiErrorBody | null;
  busy: string | null; // the action in progress: 'open', 'rerun', 'bundle'
  message: IMessage | null;
  actionError: IApiErrorBody | null;
  job: IRunJob | null;
  jobOf: string | null;
  loadedAt: number;
}

function newState(): IRunsState {
  return {
    seq: 0,
    runs: null,
    loading: false,
    error: null,
    selected: [],
    comparison: null,
    comparisonKey: '',
    comparisonError: null,
    busy: null,
    message: null,
    actionError: null,
    job: null,
    jobOf: null,
    loadedAt: 0
  };
}

export class RunsSection {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly host: IRunsHost
  ) {}

  dispose(): void {
    this._disposed = true;
    for (const timer of this._timers.values()) {
      window.clearTimeout(timer);
    }
    this._timers.clear();
  }

  /** Read the notebook's runs from the store again. */
  async load(path: string): Promise<void> {
    const state = this._state(path);
    const seq = ++state.seq;
    state.loading = true;
    this._clearTimer(`list:${path}`);
    this._render(path);
    try {
      const answer = await runsApi.history(path);
      if (seq !== state.seq) {
        return;
      }
      state.runs = answer.runs;
      state.error = null;
      state.loadedAt = Date.now();
      const known = new Set(answer.runs.map(r => r.run_id));
      state.selected = state.selected.filter(id => known.has(id));
    } catch (error) {
      if (seq === state.seq) {
        state.error = errorBody(error);
      }
    } finally {
      if (seq === state.seq) {
        state.loading = false;
        this._render(path);
        if (state.runs?.some(r => r.status === 'running')) {
          // A run in progress (here, on the command line, in CI): follow it to its end.
          this._later(`list:${path}`, LIST_POLL_MS, () => void this.load(path));
        }
        void this._compareIfTwo(path);
      }
    }
  }

  /** The one run selected (none when zero or two are) that recorded its cells: the panel's
   * DAG shows its per-step durations and statuses. */
  selectedRun(path: string): IRunSummary | null {
    const state = this._state(path);
    if (state.selected.length !== 1) {
      return null;
    }
    const run = state.runs?.find(r => r.run_id === state.selected[0]);
    return run && run.cells?.length ? run : null;
  }

  /** The Runs section for the notebook at `path` (the source, for a run's output). */
  render(path: string): HTMLElement {
    this._path = path;
    const state = this._state(path);
    const runs = state.runs;
    const count = runs ? ` (${runs.length})` : '';
    return h(
      'section',
      { class: 'nbops-section nbops-runs', 'data-path': path },
      h(
        'div',
        { class: 'nbops-runs-title' },
        h('h3', { class: 'nbops-section-title' }, `Runs${count}`),
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-reject nbops-runs-refresh',
            title: "Read this notebook's runs from the run store again",
            disabled: state.loading,
            onclick: () => void this.load(path)
          },
          state.loading ? 'Reading…' : 'Reload'
        )
      ),
      state.error ? this._errorBox(state.error, 'Cannot read the runs') : null,
      runs === null
        ? state.loading
          ? h('div', { class: 'nbops-loading' }, 'Reading the runs…')
          : null
        : runs.length
          ? [
              this._selection(path, state),
              this._list(path, state, runs)
            ]
          : h(
              'p',
              { class: 'nbops-hint nbops-runs-empty' },
              'No runs yet. Run it with parameters above, or `nbops run`, `nbops sweep`, `nbops ci` on the command line: their runs show here.'
            )
    );
  }

  // -- rows ---------------------------------------------------------------------------------

  /** The list, scrolled where the user left it (the panel re-renders while runs run). */
  private _list(path: string, state: IRunsState, runs: IRunSummary[]): HTMLElement {
    const list = h(
      'ul',
      {
        class: 'nbops-runs-list',
        role: 'listbox',
        'aria-multiselectable': 'true',
        onscroll: (e: Event) => this._scroll.set(path, (e.target as HTMLElement).scrollTop)
      },
      runs.map(run => this._row(path, state, run))
    );
    const top = this._scroll.get(path);
    if (top) {
      requestAnimationFrame(() => (list.scrollTop = top));
    }
    return list;
  }

  private _row(path: string, state: IRunsState, run: IRunSummary): HTMLElement {
    const selected = state.selected.includes(run.run_id);
    const params = Object.entries(run.parameters);
    const metrics = Object.entries(run.metrics);
    const toggle = (): void => this._toggle(path, run.run_id);
    return h(
      'li',
      {
        class: `nbops-runs-item nbops-status-${run.status}${selected ? ' nbops-selected' : ''}`,
        'data-run-id': run.run_id,
        role: 'option',
        'aria-selected': selected ? 'true' : 'false',
        onclick: (e: Event) => {
          const target = e.target as HTMLElement;
          if (!target.closest('a, input')) {
            toggle();
          }
        }
      },
      h('input', {
        type: 'checkbox',
        class: 'nbops-run-select',
        title: 'Select: one to open, re-run or bundle; two to compare',
        checked: selected,
        onchange: toggle
      }),
      h(
        'div',
        { class: 'nbops-runs-body' },
        h(
          'div',
          { class: 'nbops-runs-head' },
          h('code', { class: 'nbops-run-id', title: run.run_id }, run.short_id),
          h('span', { class: 'nbops-run-state' }, run.status),
          h(
            'span',
            { class: 'nbops-run-when', title: `started ${run.started_at}` },
            whenText(run.started_at),
            run.duration_s !== null && run.duration_s !== undefined
              ? ` · ${run.duration_s.toFixed(1)} s`
              : null
          ),
          run.sweep_id
            ? h('span', { class: 'nbops-run-origin', title: run.sweep_id }, 'sweep')
            : null,
          run.ci ? h('span', { class: 'nbops-run-origin', title: 'nbops ci' }, 'CI') : null,
          run.rerun_of
            ? h('span', { class: 'nbops-run-origin', title: `re-run of ${run.rerun_of}` }, 're-run')
            : null,
          run.bundle
            ? h('span', { class: 'nbops-run-origin nbops-run-bundled', title: run.bundle.folder },
                `bundle v${run.bundle.version}`)
            : null
        ),
        h(
          'div',
          { class: 'nbops-run-params' },
          params.length
            ? params.map(([k, v]) => h('code', { class: 'nbops-run-param' }, `${k}=${pyValue(v)}`))
            : h('span', { class: 'nbops-hint' }, 'default parameters')
        ),
        metrics.length
          ? h(
              'div',
              { class: 'nbops-run-metrics' },
              metrics.slice(0, 4).map(([k, v]) =>
                h('span', { class: 'nbops-run-metric' }, h('span', { class: 'nbops-hint' }, `${k} `), metricText(v))
              ),
              metrics.length > 4
                ? h('span', { class: 'nbops-hint', title: metrics.map(([k, v]) => `${k} ${metricText(v)}`).join('\n') }, ` +${metrics.length - 4}`)
                : null
            )
          : null,
        run.gates.length
          ? h(
              'div',
              { class: 'nbops-run-gates' },
              run.gates.map(g =>
                h(
                  'span',
                  {
                    class: `nbops-gate ${g.passed ? 'nbops-gate-passed' : 'nbops-gate-failed'}`,
                    title: g.reason || (g.passed ? 'passed' : 'failed')
                  },
                  `${g.passed ? '✓' : '✗'} ${g.gate}`
                )
              )
            )
          : null,
        run.failure ? this._failure(run.failure) : null
      )
    );
  }

  private _failure(failure: IRunFailure): HTMLElement {
    const hasCell = failure.cell_index !== null && failure.cell_index !== undefined;
    return h(
      'div',
      { class: 'nbops-run-failure' },
      'Failed',
      hasCell || failure.cell_id
        ? [
            ' in ',
            h(
              'a',
              {
                class: 'nbops-cell-link',
                href: '#',
                title: 'Show this cell in the notebook',
                'data-cell-index': hasCell ? String(failure.cell_index) : undefined,
                onclick: (e: Event) => {
                  e.preventDefault();
                  this.host.jumpToCell(failure.cell_index, failure.cell_id);
                }
              },
              hasCell ? `cell ${(failure.cell_index as number) + 1}` : 'its cell'
            )
          ]
        : null,
      ': ',
      h('code', {}, `${failure.ename}: ${failure.evalue}`)
    );
  }

  // -- selection: actions for one, a comparison for two ------------------------------------

  private _toggle(path: string, runId: string): void {
    const state = this._state(path);
    if (state.selected.includes(runId)) {
      state.selected = state.selected.filter(id => id !== runId);
    } else {
      state.selected = [...state.selected, runId].slice(-MAX_SELECTED);
    }
    state.message = null;
    state.actionError = null;
    this._render(path);
    void this._compareIfTwo(path);
  }

  private _selection(path: string, state: IRunsState): HTMLElement | null {
    const runs = state.runs ?? [];
    const selected = state.selected
      .map(id => runs.find(r => r.run_id === id))
      .filter((r): r is IRunSummary => !!r);
    const job = state.job;
    const jobView = job ? this._jobStatus(state) : null;
    if (selected.length === 2) {
      return h('div', { class: 'nbops-runs-selection' }, this._comparison(state, selected), jobView);
    }
    if (selected.length !== 1) {
      return h(
        'div',
        { class: 'nbops-runs-selection' },
        h('p', { class: 'nbops-hint nbops-runs-help' }, 'Select a run to open, re-run or bundle it; two to compare them.'),
        jobView
      );
    }
    const run = selected[0];
    const busy = state.busy;
    const rerunning = !!job && !FINISHED.has(job.status);
    const bundleTitle = run.bundle
      ? `Show the bundle built from this run (${run.bundle.folder})`
      : run.bundle_blocked ?? 'Build a deployable bundle from this run (nbops bundle --run)';
    return h(
      'div',
      { class: 'nbops-runs-selection' },
      h(
        'div',
        { class: 'nbops-runs-actions' },
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-accept nbops-runs-open',
            disabled: !run.has_output || busy !== null,
            title: run.has_output
              ? "Open the run's output notebook (a copy in nbops-runs/)"
              : 'This run kept no output notebook',
            onclick: () => void this._open(path, run)
          },
          busy === 'open' ? 'Opening…' : 'Open output'
        ),
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-accept nbops-runs-rerun',
            disabled: busy !== null || rerunning || run.status === 'running',
            title: 'Run it again: same parameters, same notebook version (nbops rerun)',
            onclick: () => void this._rerun(path, run)
          },
          busy === 'rerun' || rerunning ? 'Re-running…' : 'Re-run'
        ),
        h(
          'button',
          {
            class: 'jp-Button jp-mod-styled jp-mod-accept nbops-runs-bundle',
            disabled: busy !== null || (!run.bundle && !!run.bundle_blocked),
            title: bundleTitle,
            onclick: () => void this._bundle(path, run)
          },
          busy === 'bundle' ? 'Building…' : run.bundle ? 'Show bundle' : 'Build bundle'
        )
      ),
      !run.bundle && run.bundle_blocked
        ? h('div', { class: 'nbops-hint nbops-runs-blocked' }, `No bundle: ${run.bundle_blocked}`)
        : null,
      state.message
        ? h(
            'div',
            {
              class: state.message.warning
                ? 'nbops-warning nbops-runs-message'
                : 'nbops-result nbops-runs-message'
            },
            state.message.text,
            state.message.folder ? [' ', h('code', { class: 'nbops-folder' }, state.message.folder)] : null
          )
        : null,
      state.actionError ? this._errorBox(state.actionError) : null,
      jobView
    );
  }

  private _comparison(state: IRunsState, runs: IRunSummary[]): HTMLElement {
    if (state.comparisonError) {
      return this._errorBox(state.comparisonError, 'Cannot compare the runs');
    }
    const comparison = state.comparison;
    if (!comparison || comparison.runs.join(' ') !== runs.map(r => r.run_id).join(' ')) {
      return h('div', { class: 'nbops-loading' }, 'Comparing…');
    }
    const differing = comparison.rows.filter(r => r.differs).length;
    return h(
      'div',
      { class: 'nbops-runs-compare' },
      h(
        'table',
        { class: 'nbops-table nbops-compare-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { class: 'nbops-differs-mark' }, ''),
            h('th', {}, 'name'),
            runs.map(r => h('th', { title: r.run_id }, h('code', {}, r.short_id)))
          )
        ),
        h(
          'tbody',
          {},
          comparison.rows.map(row =>
            h(
              'tr',
              {
                class: `nbops-compare-row${row.differs ? ' nbops-differs' : ''}`,
                'data-kind': row.kind,
                'data-name': row.name
              },
              h('td', { class: 'nbops-differs-mark', title: row.differs ? 'the runs differ' : undefined }, row.differs ? '*' : ''),
              h('td', {}, h('span', { class: 'nbops-hint' }, `${row.kind} `), h('code', {}, row.name)),
              row.shown.map(text => h('td', { class: 'nbops-compare-value' }, h('code', {}, text)))
            )
          )
        )
      ),
      h('div', { class: 'nbops-hint' }, `${differing} of ${comparison.rows.length} differ (marked *), as nbops runs compare prints them.`)
    );
  }

  private async _compareIfTwo(path: string): Promise<void> {
    const state = this._state(path);
    if (state.selected.length !== 2) {
      return;
    }
    const key = state.selected.join(' ');
    if (state.comparisonKey === key && (state.comparison || state.comparisonError)) {
      return;
    }
    state.comparisonKey = key;
    state.comparison = null;
    state.comparisonError = null;
    try {
      const comparison = await runsApi.compare(path, state.selected);
      if (state.comparisonKey === key) {
        state.comparison = comparison;
      }
    } catch (error) {
      if (state.comparisonKey === key) {
        state.comparisonError = errorBody(error);
      }
    }
    this._render(path);
  }

  // -- actions ------------------------------------------------------------------------------

  private async _open(path: string, run: IRunSummary): Promise<void> {
    const state = this._state(path);
    await this._act(path, 'open', async () => {
      const answer = await runsApi.output(path, run.run_id);
      state.message = { text: `Output notebook of run ${run.short_id}:`, folder: answer.output_notebook };
      await this.app.commands.execute('docmanager:open', { path: answer.output_notebook });
    });
  }

  private async _bundle(path: string, run: IRunSummary): Promise<void> {
    const state = this._state(path);
    if (run.bundle) {
      // Built already: show it, never a new version of the same run.
      state.message = { text: `Bundle ${run.bundle.name} v${run.bundle.version}, built from this run, in`, folder: run.bundle.folder };
      state.actionError = null;
      this._render(path);
      return;
    }
    await this._act(path, 'bundle', async () => {
      const answer = await api.bundle(run.run_id, path);
      state.message = {
        text: answer.existing ? 'Built already from this run: bundle in' : 'Bundle built in',
        folder: answer.folder
      };
      await this.load(path);
    });
  }

  private async _rerun(path: string, run: IRunSummary): Promise<void> {
    const state = this._state(path);
    await this._act(path, 'rerun', async () => {
      const answer = await runsApi.rerun(path, run.run_id);
      state.job = { job: answer.job, status: 'running' };
      state.jobOf = run.run_id;
      state.message = answer.warnings.length
        ? { text: answer.warnings.join(' · '), warning: true }
        : null;
      this._pollJob(path, answer.job);
    });
  }

  private async _act(path: string, action: string, work: () => Promise<void>): Promise<void> {
    const state = this._state(path);
    state.busy = action;
    state.message = null;
    state.actionError = null;
    this._render(path);
    try {
      await work();
    } catch (error) {
      state.actionError = errorBody(error);
    } finally {
      state.busy = null;
      this._render(path);
    }
  }

  private _jobStatus(state: IRunsState): HTMLElement | null {
    const job = state.job;
    if (!job) {
      return null;
    }
    const error = job.error && typeof job.error === 'object' ? job.error : job.error ? { message: String(job.error) } : null;
    return h(
      'div',
      { class: `nbops-result nbops-runs-job nbops-status-${job.status}` },
      `Re-run of ${(state.jobOf ?? '').split('-').pop()}: `,
      job.run_id ? [h('code', { class: 'nbops-run-id' }, job.run_id.split('-').pop() ?? ''), ' '] : null,
      h('strong', { class: 'nbops-runs-job-status' }, job.status),
      error ? this._errorBox(error) : null
    );
  }

  private _pollJob(path: string, jobId: string): void {
    const state = this._state(path);
    const tick = async (): Promise<void> => {
      if (this._disposed || state.job?.job !== jobId) {
        return;
      }
      let job: IRunJob;
      try {
        job = await api.run(jobId);
      } catch (error) {
        job = { job: jobId, status: 'error', error: errorBody(error) };
      }
      state.job = job;
      const done = FINISHED.has(job.status);
      if (done || (job.run_id && !state.runs?.some(r => r.run_id === job.run_id))) {
        await this.load(path); // the new run shows (running, then finished) in the list
      } else {
        this._render(path);
      }
      if (!done) {
        this._later(`job:${path}`, JOB_POLL_MS, () => void tick());
      }
    };
    this._later(`job:${path}`, JOB_POLL_MS / 2, () => void tick());
  }

  // -- plumbing -----------------------------------------------------------------------------

  private _errorBox(error: IApiErrorBody, title?: string): HTMLElement {
    return h(
      'div',
      { class: 'nbops-error' },
      title ? h('div', { class: 'nbops-error-title' }, title) : null,
      h('div', { class: 'nbops-error-message' }, error.message),
      error.fix ? h('div', { class: 'nbops-fix' }, `Fix: ${error.fix}`) : null
    );
  }

  /** Re-render the panel when the section shown is this notebook's. */
  private _render(path: string): void {
    if (!this._disposed && this._path === path) {
      this.host.render();
    }
  }

  private _state(path: string): IRunsState {
    let state = this._states.get(path);
    if (!state) {
      state = newState();
      this._states.set(path, state);
    }
    return state;
  }

  private _later(key: string, ms: number, fn: () => void): void {
    this._clearTimer(key);
    this._timers.set(
      key,
      window.setTimeout(() => {
        this._timers.delete(key);
        if (!this._disposed) {
          fn();
        }
      }, ms)
    );
  }

  private _clearTimer(key: string): void {
    const timer = this._timers.get(key);
    if (timer !== undefined) {
      window.clearTimeout(timer);
      this._timers.delete(key);
    }
  }

  private _path: string | null = null;
  private _disposed = false;
  private _states = new Map<string, IRunsState>();
  private _timers = new Map<string, number>();
  private _scroll = new Map<string, number>();
}
