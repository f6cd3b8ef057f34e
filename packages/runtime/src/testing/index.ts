export {
  freePort,
  type NatsServerHandle,
  type NatsServerOptions,
  natsServerBinary,
  startNatsServer,
} from './natsServer.js';
export { metricValue, type ServiceProcess, startServiceProcess } from './serviceProcess.js';
