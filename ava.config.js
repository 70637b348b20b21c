export default {
  extensions: { ts: 'module' },
  timeout: '120s',
  workerThreads: false,
};
