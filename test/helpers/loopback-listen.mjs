// Preloaded (`node --import`) into third-party servers the tests start, which listen on every interface and
// on a fixed port: forces 127.0.0.1, lets PORT=0 pick a free port, and reports the port on stderr.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function patchedListen(...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const port = Number(args[0]);
    const cb = args.find((a) => typeof a === 'function');
    this.once('listening', () => process.stderr.write(`SB_TEST_LISTENING ${this.address().port}\n`));
    return listen.call(this, port, '127.0.0.1', cb);
  }
  return listen.apply(this, args);
};
