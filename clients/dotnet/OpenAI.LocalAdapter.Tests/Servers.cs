// The real simulator and the real proxy as processes on free loopback ports, for the suite.
// DEVSTRAL_PYTHON names the Python with the proxy installed; DEVSTRAL_ROOT the checkout.
using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Threading;

namespace OpenAI.LocalAdapter.Tests
{
    public sealed class Servers : IDisposable
    {
        public const string ApiKey = "sk-test";
        /// <summary>What the simulated model answers: long enough (80 tokens, 10 ms apart) to cancel mid-way.</summary>
        public static readonly string Reply = "Once upon a time" + string.Concat(System.Linq.Enumerable.Repeat(" the lighthouse keeper walked up the stairs", 11)) + ".";
        private readonly Process simulator;
        private readonly Process proxy;
        private readonly string directory;

        public int SimulatorPort { get; }
        public int ProxyPort { get; }
        public string ProxyUrl { get { return "http://127.0.0.1:" + ProxyPort; } }
        public string SimulatorUrl { get { return "http://127.0.0.1:" + SimulatorPort; } }

        public Servers()
        {
            string python = Environment.GetEnvironmentVariable("DEVSTRAL_PYTHON") ?? ".venv/bin/python";
            string root = Environment.GetEnvironmentVariable("DEVSTRAL_ROOT") ?? Directory.GetCurrentDirectory();
            SimulatorPort = FreePort();
            ProxyPort = FreePort();
            directory = Path.Combine(Path.GetTempPath(), "localadapter-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            string config = Path.Combine(directory, "proxy.toml");
            File.WriteAllText(config, string.Join("\n", new[]
            {
                "[server]", "host = \"127.0.0.1\"", "port = " + ProxyPort,
                "[backends.sim]", "url = \"" + SimulatorUrl + "\"", "dialect = \"mistral\"", "max_in_flight = 1",
                "[model_mapping]", "\"gpt-4\" = \"mistral-sim\"",
                "[authentication]", "api_keys = [\"" + ApiKey + "\"]",
                "[queue]", "max_queued = 0",
                "[logging]", "access = false", "level = \"WARNING\"", "",
            }));
            simulator = Launch(python, root, "-m bench.simulator --port " + SimulatorPort + " --strict-mistral --tool-mode raw-v11 --token-delay 0.01 --reply \"" + Reply + "\"");
            WaitFor(SimulatorUrl + "/health");
            proxy = Launch(python, root, "-m devstral_proxy --config " + config);
            WaitFor(ProxyUrl + "/health");
        }

        private static Process Launch(string python, string root, string arguments)
        {
            var info = new ProcessStartInfo(python, arguments) { WorkingDirectory = root, UseShellExecute = false };
            return Process.Start(info);
        }

        private static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return port;
        }

        private static void WaitFor(string url)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) })
            {
                while (true)
                {
                    try
                    {
                        if (http.GetAsync(url).Result.IsSuccessStatusCode) return;
                    }
                    catch (AggregateException)
                    {
                    }
                    if (DateTime.UtcNow > deadline) throw new TimeoutException(url + " did not answer within 30 s");
                    Thread.Sleep(100);
                }
            }
        }

        /// <summary>What the simulator saw: requests, and clients that left mid-reply.</summary>
        public System.Collections.Generic.IDictionary<string, object> Stats()
        {
            using (var http = new HttpClient())
            {
                return (System.Collections.Generic.IDictionary<string, object>)Json.Parse(http.GetStringAsync(SimulatorUrl + "/sim/stats").Result);
            }
        }

        public void Dispose()
        {
            foreach (var p in new[] { proxy, simulator })
            {
                try
                {
                    if (p != null && !p.HasExited)
                    {
                        p.Kill();
                        p.WaitForExit(5000);
                    }
                }
                catch (InvalidOperationException)
                {
                }
            }
            try { Directory.Delete(directory, true); } catch (IOException) { }
        }
    }
}
