// A few turns of a text adventure through ConversationContext, streamed as the model writes.
// `make csharp-sample` starts the simulator and the proxy and runs it; against your own
// proxy: mono TextAdventure.exe http://localhost:9000 devstral [api key].
using System;
using System.Threading.Tasks;
using OpenAI.LocalAdapter;

namespace TextAdventure
{
    public static class Program
    {
        public static int Main(string[] args)
        {
            return Run(args).GetAwaiter().GetResult();
        }

        private static async Task<int> Run(string[] args)
        {
            var config = new LocalAdapterConfig
            {
                BaseUrl = args.Length > 0 ? args[0] : "http://localhost:9000",
                DefaultModel = args.Length > 1 ? args[1] : "gpt-4",
                ApiKey = args.Length > 2 ? args[2] : null,
                TimeoutSeconds = 120,
                MaxRetries = 3,
            };
            using (var client = new OpenAILocalClient(config))
            {
                var story = client.CreateConversation();
                story.AppendSystemMessage("You are the narrator of a text adventure set in a ruined lighthouse. Answer in two sentences.");
                story.RegisterTool("roll_dice", "Roll a die for the player's action.", "{\"type\":\"object\",\"properties\":{\"sides\":{\"type\":\"integer\"}}}",
                    arguments => Task.FromResult(new Random().Next(1, 7).ToString()));
                foreach (var action in new[] { "I push open the lighthouse door.", "I climb the spiral stairs.", "I light the lamp." })
                {
                    Console.WriteLine("> " + action);
                    story.AppendUserInput(action);
                    var text = story.GetResponseStreamAsync().GetAsyncEnumerator();
                    try
                    {
                        while (await text.MoveNextAsync()) Console.Write(text.Current);
                    }
                    finally
                    {
                        await text.DisposeAsync();
                    }
                    Console.WriteLine();
                }
                Console.WriteLine("(" + story.History.Count + " messages in the story so far)");
            }
            return 0;
        }
    }
}
